// Issue 2, point 8: exit statuses are exact and never lost, even with many short-lived
// containers exiting at once.
import { ctrRun, lanes, taskList, uniqueId, useContainerd } from '../helpers/lanes';

jest.setTimeout(180000); // a project-level testTimeout is not honoured by jest 30

describe.each(lanes())('concurrency [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`20 containers started at once each exit with their own code 1..20 [${lane.name}]`, async () => {
    const c = containerd();
    const codes = Array.from({ length: 20 }, (_, i) => i + 1);
    const results = await Promise.all(
      codes.map((n) => ctrRun(c, lane, uniqueId(`exit${n}`), ['sh', '-c', `exit ${n}`], { timeoutMs: 150000 })),
    );
    const got = results.map((r) => r.code);
    if (JSON.stringify(got) !== JSON.stringify(codes)) {
      throw new Error(`exit codes ${JSON.stringify(got)}\n${results.filter((r, i) => r.code !== codes[i]).map((r) => r.stderr).join('\n')}\n${c.logTail(30)}`);
    }
    expect(await taskList(c)).toEqual([]);
  });
});
