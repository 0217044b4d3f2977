// Issue 2, point 6: the shim's daemon dies, or containerd restarts, while a container runs.
import * as fs from 'node:fs';
import { isRunning, waitFor } from '../helpers/procfs';
import {
  ctrRunDetached, expectExit, isGoShim, lanes, leftovers, shimFootprint, taskRow, uniqueId, useContainerd, waitForStatus,
} from '../helpers/lanes';

jest.setTimeout(120000); // a project-level testTimeout is not honoured by jest 30

describe.each(lanes())('recovery [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`SIGKILL of the shim daemon: task reported exited (137), nothing left behind [${lane.name}]`, async () => {
    const c = containerd();
    const events = await c.events();
    try {
      const id = uniqueId('shimkill');
      expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
      const f = await shimFootprint(c, id);
      process.kill(f.shimPid, 'SIGKILL');
      // containerd notices the lost connection, runs `<shim> delete -bundle ...` to clean up,
      // publishes exit + delete with the DeleteResponse's status and drops the task.
      const exit = await events.waitFor((e) => e.topic === '/tasks/exit' && e.event.container_id === id, 20000);
      expect(Number(exit.event.exit_status ?? 0)).toBe(137);
      await events.waitFor((e) => e.topic === '/tasks/delete' && e.event.container_id === id, 20000);
      expect(await waitFor(async () => (await taskRow(c, id)) === undefined, 10000, 100)).toBe(true);
      let problems = await leftovers(f);
      // Known Go shim leak: its `delete` does not remove the dead daemon's socket file in
      // /run/containerd/s/. Ferry must not leak it; for the reference it is tolerated (and
      // removed here, it is this test's).
      if (isGoShim(lane) && f.socket) {
        problems = problems.filter((p) => p !== `shim socket left: ${f.socket}`);
        fs.rmSync(f.socket, { force: true });
      }
      expect(problems).toEqual([]);
      expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    } finally {
      await events.stop();
    }
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`containerd restarted (${signal}) while a task runs: still RUNNING, kill and rm work [${lane.name}]`, async () => {
      const c = containerd();
      const id = uniqueId(`restart-${signal.toLowerCase()}`);
      expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
      const f = await shimFootprint(c, id);
      await c.restart(signal);
      // The daemon outlived containerd and containerd reconnected to it.
      expect(isRunning(f.shimPid)).toBe(true);
      expect(isRunning(f.containerPid)).toBe(true);
      const row = await waitForStatus(c, id, 'RUNNING');
      expect(row.pid).toBe(f.containerPid);
      expect(c.shimDaemons(id).map((p) => p.pid)).toEqual([f.shimPid]);
      expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
      await waitForStatus(c, id, 'STOPPED');
      expectExit(c, await c.ctr(['task', 'rm', id]), 0);
      expect(await leftovers(f)).toEqual([]);
      expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    });
  }
});
