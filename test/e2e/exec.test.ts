// Issue 3, points 1, 3 and 8: exec'd processes as containerd-shim-runc-v2 runs them — exit
// codes, stdio, CloseIO, duplicate ids, runc's error for a missing binary, the exec events,
// `ctr task ps` with exec ids, and the refusals for unknown exec ids. Every test also runs
// against the Go shim (FERRY_E2E_RUNTIMES=io.containerd.runc.v2).
import { callTasks } from '../helpers/containerd-api';
import { collect, Containerd, CtrEvent, EventStream } from '../helpers/containerd';
import { ctrRunDetached, explain, expectExit, isGoShim, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { sleep, waitFor } from '../helpers/procfs';

jest.setTimeout(120000);

const exitStatusOf = (e: CtrEvent): number => Number(e.event.exit_status ?? 0);

/** `ctr task ps` rows: pid and the INFO column ('-' for the init). */
async function ps(c: Containerd, id: string): Promise<{ pid: number; info: string }[]> {
  const r = await c.ctr(['task', 'ps', id]);
  if (r.code !== 0) throw new Error(`ctr task ps failed\n${explain(c, r)}`);
  return r.stdout.split('\n').slice(1).filter((l) => l.trim()).map((l) => {
    const m = /^(\d+)\s+(.*)$/.exec(l.trim());
    return { pid: Number(m![1]), info: m![2]!.trim() };
  });
}

describe.each(lanes())('exec [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let stream: EventStream;
  let id: string;
  beforeAll(async () => {
    const c = containerd();
    stream = await c.events();
    id = uniqueId('exec');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '100000']), 0);
    await waitForStatus(c, id, 'RUNNING');
  });
  afterAll(async () => {
    await stream?.stop();
  });

  const exec = (execId: string, args: string[], flags: string[] = []) =>
    containerd().ctr(['task', 'exec', ...flags, '--exec-id', execId, id, ...args]);

  test(`exec sh -c 'exit 5' exits 5, and the init keeps running [${lane.name}]`, async () => {
    const c = containerd();
    expectExit(c, await exec('e-exit5', ['sh', '-c', 'exit 5']), 5);
    expectExit(c, await exec('e-exit0', ['true']), 0);
    expect((await waitForStatus(c, id, 'RUNNING')).status).toBe('RUNNING');
  });

  test(`exec stdout and stderr reach ctr separately [${lane.name}]`, async () => {
    const c = containerd();
    const r = await exec('e-out', ['sh', '-c', 'echo to-out; echo to-err >&2; seq 1 20000 | tail -1']);
    expectExit(c, r, 0);
    expect(r.stdout).toBe('to-out\n20000\n');
    expect(r.stderr).toBe('to-err\n');
  });

  test(`exec stdin: cat gets the input and EOF (CloseIO) and exits [${lane.name}]`, async () => {
    const c = containerd();
    const execId = 'e-stdin';
    const child = c.spawnCtr(['task', 'exec', '--exec-id', execId, id, 'sh', '-c', 'cat; echo after-eof'], 'pipe');
    const done = collect(child, { timeoutMs: 60000 });
    child.stdin!.on('error', () => undefined);
    child.stdin!.write('line one\nline two\n');
    // ctr sends CloseIO on stdin EOF only once the process exists (see lanes.ctrRunWithStdin).
    await waitFor(async () => (await ps(c, id)).some((p) => p.info.includes(execId)) || child.exitCode !== null, 15000, 50);
    await sleep(200);
    child.stdin!.end();
    const r = await done;
    expectExit(c, r, 0);
    expect(r.stdout).toBe('line one\nline two\nafter-eof\n');
  });

  test(`a second exec with the same id is refused with AlreadyExists [${lane.name}]`, async () => {
    const c = containerd();
    expectExit(c, await exec('e-dup', ['sleep', '1000'], ['-d']), 0);
    const r = await exec('e-dup', ['true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/id e-dup: already exists/);
    // The first one is untouched.
    expect((await ps(c, id)).filter((p) => p.info.includes('e-dup'))).toHaveLength(1);
    expectExit(c, await c.ctr(['task', 'kill', '--exec-id', 'e-dup', '-s', 'SIGKILL', id]), 0);
  });

  test(`exec of a missing binary fails with runc's message [${lane.name}]`, async () => {
    const c = containerd();
    const r = await exec('e-missing', ['nosuch-binary']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('OCI runtime exec failed');
    expect(r.stderr).toContain('exec: "nosuch-binary": executable file not found in $PATH');
    // The container is unharmed and the id can be used again.
    expectExit(c, await exec('e-missing', ['sh', '-c', 'exit 4']), 4);
  });

  test(`a failed exec start releases its waiters at once, before any delete [${lane.name}]`, async () => {
    const c = containerd();
    const spec = { args: ['nosuch-binary'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } };
    await callTasks(c, 'exec', {
      containerId: id, execId: 'e-fail-wait',
      spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify(spec)) },
    });
    const waiting = callTasks(c, 'wait', { containerId: id, execId: 'e-fail-wait' }, 10000);
    await expect(callTasks(c, 'start', { containerId: id, execId: 'e-fail-wait' })).rejects.toMatchObject({
      details: expect.stringContaining('executable file not found'),
    });
    await expect(waiting).resolves.toBeDefined();
    await callTasks(c, 'deleteProcess', { containerId: id, execId: 'e-fail-wait' });
    expect((await waitForStatus(c, id, 'RUNNING')).status).toBe('RUNNING');
  });

  test(`exec events: exec-added, exec-started, exit with the exec id; no task delete [${lane.name}]`, async () => {
    const c = containerd();
    const execId = 'e-events';
    expectExit(c, await exec(execId, ['sh', '-c', 'exit 9']), 9);
    await stream.waitFor((e) => e.topic === '/tasks/exit' && e.event.id === execId);
    await sleep(500); // anything published for the exec's delete would have arrived by now
    const evs = stream.events.filter((e) => e.event.container_id === id && (e.event.exec_id === execId || e.event.id === execId));
    expect(evs.map((e) => e.topic)).toEqual(['/tasks/exec-added', '/tasks/exec-started', '/tasks/exit']);
    const [, started, exit] = evs as [CtrEvent, CtrEvent, CtrEvent];
    expect(Number(started.event.pid)).toBeGreaterThan(0);
    expect(Number(exit.event.pid)).toBe(Number(started.event.pid));
    expect(exitStatusOf(exit)).toBe(9);
    expect(exit.event.exited_at).toBeDefined();
    // The container's own delete event was not published by the exec's removal.
    expect(stream.events.some((e) => e.topic === '/tasks/delete' && e.event.container_id === id)).toBe(false);
  });

  test(`ctr task ps lists the init and each exec with its exec id [${lane.name}]`, async () => {
    const c = containerd();
    expectExit(c, await exec('e-ps1', ['sleep', '1000'], ['-d']), 0);
    expectExit(c, await exec('e-ps2', ['sleep', '1001'], ['-d']), 0);
    const init = (await waitForStatus(c, id, 'RUNNING')).pid;
    const rows = await waitFor(async () => {
      const r = await ps(c, id);
      return r.filter((p) => /e-ps[12]/.test(p.info)).length === 2 ? r : undefined;
    }, 10000, 100);
    expect(rows).toBeDefined();
    expect(rows!.find((p) => p.pid === init)?.info).toBe('-');
    const e1 = rows!.find((p) => p.info.includes('e-ps1'))!;
    const e2 = rows!.find((p) => p.info.includes('e-ps2'))!;
    expect(e1.info).toMatch(/exec_id:"e-ps1"|ExecID:e-ps1/);
    expect(e1.pid).not.toBe(e2.pid);
    // The exec's pid really is that process (its command line in /proc; runc may still be
    // finishing the execve when Start returns, so allow it a moment).
    const fs = require('node:fs') as typeof import('node:fs');
    const cmdline = () => fs.readFileSync(`/proc/${e2.pid}/cmdline`, 'utf8');
    await waitFor(() => cmdline() !== '', 5000, 20);
    expect(cmdline().split('\0')).toEqual(['sleep', '1001', '']);
    for (const e of ['e-ps1', 'e-ps2']) expectExit(c, await c.ctr(['task', 'kill', '--exec-id', e, '-s', 'SIGKILL', id]), 0);
  });

  test(`an exec killed by a signal exits 128+signal, and is reaped [${lane.name}]`, async () => {
    const c = containerd();
    const child = c.spawnCtr(['task', 'exec', '--exec-id', 'e-kill', id, 'sleep', '1002']);
    const done = collect(child, { timeoutMs: 60000 });
    const row = await waitFor(async () => (await ps(c, id)).find((p) => p.info.includes('e-kill')), 15000, 50);
    expect(row).toBeDefined();
    expectExit(c, await c.ctr(['task', 'kill', '--exec-id', 'e-kill', '-s', 'SIGKILL', id]), 0);
    expectExit(c, await done, 137);
    // Reaped: no zombie left behind.
    await waitFor(() => !require('node:fs').existsSync(`/proc/${row!.pid}`), 5000);
    expect(require('node:fs').existsSync(`/proc/${row!.pid}`)).toBe(false);
  });

  test(`12 concurrent execs each get their own exit code (no exit lost or stolen) [${lane.name}]`, async () => {
    const c = containerd();
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      exec(`e-conc-${i + 1}`, ['sh', '-c', `sleep 0.$((${i} % 3)); exit ${i + 1}`])));
    results.forEach((r, i) => expectExit(c, r, i + 1));
    expect((await waitForStatus(c, id, 'RUNNING')).status).toBe('RUNNING');
  });

  test(`unknown exec id: kill, and resize through the API, answer NotFound [${lane.name}]`, async () => {
    const c = containerd();
    const r = await c.ctr(['task', 'kill', '--exec-id', 'no-such-exec', id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not found/);
    await expect(callTasks(c, 'resizePty', { containerId: id, execId: 'no-such-exec', width: 80, height: 24 }))
      .rejects.toMatchObject({ code: 5 });
  });

  test(`resize of a process without a terminal: ferry refuses it clearly (the Go shim ignores it), nothing changes [${lane.name}]`, async () => {
    const c = containerd();
    const resize = (execId: string) => callTasks(c, 'resizePty', { containerId: id, execId, width: 100, height: 40 });
    const expectOutcome = async (p: Promise<unknown>, execId: string) => {
      if (isGoShim(lane)) await expect(p).resolves.toBeDefined();
      else await expect(p).rejects.toMatchObject({ code: 9, details: expect.stringContaining(`process ${execId || id} has no terminal to resize`) });
    };
    await expectOutcome(resize(''), '');
    expectExit(c, await exec('e-notty', ['sleep', '1003'], ['-d']), 0);
    await expectOutcome(resize('e-notty'), 'e-notty');
    expect((await waitForStatus(c, id, 'RUNNING')).status).toBe('RUNNING');
    expectExit(c, await c.ctr(['task', 'kill', '--exec-id', 'e-notty', '-s', 'SIGKILL', id]), 0);
  });

  test(`exec into a stopped task is refused [${lane.name}]`, async () => {
    const c = containerd();
    const other = uniqueId('exec-stopped');
    expectExit(c, await ctrRunDetached(c, lane, other, ['true']), 0);
    await waitForStatus(c, other, 'STOPPED');
    const r = await c.ctr(['task', 'exec', '--exec-id', 'late', other, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot exec in a stopped state/);
    expectExit(c, await c.ctr(['task', 'rm', other]), 0);
    expectExit(c, await c.ctr(['container', 'rm', other]), 0);
  });
});
