// Issue 2, points 1 and 2: a container's whole lifecycle driven by ctr, with exact exit codes.
import * as path from 'node:path';
import { exists, isRunning, mountsUnder, waitFor } from '../helpers/procfs';
import {
  ctrRun, ctrRunBackground, ctrRunDetached, expectExit, explain, lanes, leftovers, shimFootprint, taskRow, uniqueId, useContainerd,
  waitForStatus,
} from '../helpers/lanes';
import * as fs from 'node:fs';

jest.setTimeout(120000); // a project-level testTimeout is not honoured by jest 30

// The SIGTERM test raced Delete against `runc kill --all` (issue 11, item 6): `make soak`
// (FERRY_E2E_SOAK=1) runs it 30 times in a row per lane.
const SIGTERM_RUNS = process.env.FERRY_E2E_SOAK ? 30 : 1;

describe.each(lanes())('lifecycle [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`ctr run --rm echo hello prints hello and exits 0 [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('echo'), ['echo', 'hello']);
    expectExit(c, r, 0);
    expect(r.stdout).toBe('hello\n');
  });

  test(`ctr run exits with the container's exit code 3 [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('exit3'), ['sh', '-c', 'exit 3']);
    expectExit(c, r, 3);
  });

  test(`ctr task kill -s SIGKILL makes ctr run exit 137 [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('kill9');
    const run = ctrRunBackground(c, lane, id, ['sleep', '1000']);
    await waitForStatus(c, id, 'RUNNING');
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    expectExit(c, await run.done, 137);
  });

  // A container's init is pid 1 of its pid namespace, and the kernel drops SIGTERM to it
  // unless it installed a handler. To see a process really die of SIGTERM (the shim's
  // 128+signal path), the task joins the pid namespace of another container, so it is not
  // pid 1 there.
  test(`ctr task kill -s SIGTERM makes ctr run exit 143${SIGTERM_RUNS > 1 ? ` (${SIGTERM_RUNS} runs)` : ''} [${lane.name}]`, async () => {
    const c = containerd();
    const holder = uniqueId('pidns');
    expectExit(c, await ctrRunDetached(c, lane, holder, ['sleep', '1000']), 0);
    const holderPid = (await waitForStatus(c, holder, 'RUNNING')).pid;
    for (let run = 0; run < SIGTERM_RUNS; run++) {
      const id = uniqueId('term');
      const ctrRunning = ctrRunBackground(c, lane, id, ['sleep', '1000'], ['--with-ns', `pid:/proc/${holderPid}/ns/pid`]);
      await waitForStatus(c, id, 'RUNNING');
      expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGTERM', id]), 0);
      const r = await ctrRunning.done;
      if (r.code !== 143) throw new Error(`run ${run + 1} of ${SIGTERM_RUNS}: expected ctr to exit 143\n${explain(c, r)}`);
    }
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', holder]), 0);
    await waitForStatus(c, holder, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', holder]), 0);
    expectExit(c, await c.ctr(['container', 'rm', holder]), 0);
  });

  test(`run -d, task ls RUNNING, task ps, kill, STOPPED, task rm, c rm [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('detached');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
    const row = await waitForStatus(c, id, 'RUNNING');
    expect(row.pid).toBeGreaterThan(0);
    expect(isRunning(row.pid)).toBe(true);

    const ps = await c.ctr(['task', 'ps', id]);
    expectExit(c, ps, 0);
    const pids = ps.stdout.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((n) => n > 0);
    expect(pids).toContain(row.pid);

    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expect(await waitFor(() => !exists(row.pid), 5000)).toBe(true);

    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expect(await taskRow(c, id)).toBeUndefined();
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    const cs = await c.ctr(['container', 'ls', '--quiet']);
    expect(cs.stdout.split('\n')).not.toContain(id);
  });

  test(`ctr task kill --all ends every process of the task [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('killall');
    // init (sh, waiting) plus two children.
    expectExit(c, await ctrRunDetached(c, lane, id, ['sh', '-c', 'sleep 1000 & sleep 1001 & wait']), 0);
    const row = await waitForStatus(c, id, 'RUNNING');
    const listed = await waitFor(async () => {
      const ps = await c.ctr(['task', 'ps', id]);
      const pids = ps.stdout.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((n) => n > 0);
      return pids.length >= 3 ? pids : undefined;
    }, 10000, 100);
    expect(listed).toBeDefined();
    expect(listed).toContain(row.pid);
    expectExit(c, await c.ctr(['task', 'kill', '--all', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    for (const pid of listed!) expect(await waitFor(() => !exists(pid), 5000)).toBe(true);
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`ctr c create + ctr task start runs the task [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('created');
    expectExit(c, await c.ctr(['container', 'create', '--runtime', lane.runtime, c.image!.name, id, 'sh', '-c', 'exit 5']), 0);
    // Foreground `task start` attaches to the task and exits with its status.
    expectExit(c, await c.ctr(['task', 'start', id]), 5);
    const after = await taskRow(c, id);
    expect(after === undefined || after.status === 'STOPPED').toBe(true);
    if (after) expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);

    const id2 = uniqueId('created-d');
    expectExit(c, await c.ctr(['container', 'create', '--runtime', lane.runtime, c.image!.name, id2, 'sleep', '1000']), 0);
    expectExit(c, await c.ctr(['task', 'start', '--detach', id2]), 0);
    await waitForStatus(c, id2, 'RUNNING');
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id2]), 0);
    await waitForStatus(c, id2, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id2]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id2]), 0);
  });

  test(`deleting a running task is refused and the task keeps running [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('busy');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
    const row = await waitForStatus(c, id, 'RUNNING');
    const rm = await c.ctr(['task', 'rm', id]);
    expect(rm.code).not.toBe(0);
    // The Go shim's (and containerd client's) text: "task must be stopped before deletion:
    // running: failed precondition".
    expect(rm.stderr).toMatch(/task must be stopped before deletion: running: failed precondition/);
    expect((await taskRow(c, id))?.status).toBe('RUNNING');
    expect(isRunning(row.pid)).toBe(true);
    // The container, too, cannot go while its task exists.
    const crm = await c.ctr(['container', 'rm', id]);
    expect(crm.code).not.toBe(0);
    expectExit(c, await c.ctr(['task', 'rm', '--force', id]), 0);
    expect(await taskRow(c, id)).toBeUndefined();
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  // Issue 2, point 5: after its last task is deleted the shim daemon exits and leaves nothing.
  test(`after task rm the shim exits: no daemon, zombie, container process, mount, socket or bundle [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('clean');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
    const f = await shimFootprint(c, id);
    expect(f.socket).toBeDefined();
    expect(fs.statSync(f.socket!).isSocket()).toBe(true);
    // Point 12: a filesystem socket, 0600, in a directory only root can enter.
    expect(fs.statSync(f.socket!).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(f.socket!)).mode & 0o077).toBe(0);
    // The rootfs is mounted at <bundle>/rootfs while the task exists.
    expect(mountsUnder(f.bundle).length).toBeGreaterThan(0);
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    // The daemon serves until the task is deleted.
    expect(isRunning(f.shimPid)).toBe(true);
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expect(await leftovers(f)).toEqual([]);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`ctr run --rm leaves no shim daemon or bundle behind [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('clean-rm');
    expectExit(c, await ctrRun(c, lane, id, ['true']), 0);
    expect(await waitFor(() => c.shimDaemons(id).length === 0, 10000)).toBe(true);
    expect(fs.existsSync(c.bundleDir(id))).toBe(false);
  });
});

