// Issue 11, items 4, 5 and 6: a container's init exiting at awkward moments, as containerd's
// Go shim handles it (runtime/v2/runc/task/service.go: preStart/handleStarted, handleInitExit):
//  - killed between `runc create` and Start, or right after Create: Create succeeds, Wait
//    returns the exit, State says STOPPED with the status, the exit event follows the create;
//  - killed while an exec's `runc exec` is held: that start fails, an exec started afterwards is
//    refused, the init's exit comes only after the held start settled; nothing hangs or is left;
//  - without its own pid namespace: `runc kill --all` is done before the exit is recorded, so
//    Wait cannot return (and ctr cannot Delete) while runc still kills; likewise a Kill still
//    being answered is answered first (ferry's shim used to exit under it: "ttrpc: closed").
// The runtime binary is a wrapper (test/fixtures/runc-wrapper.sh) that kills, holds or slows runc.
import type { Mount } from '../../api/gen/containerd/types/mount';
import { rootfsMounts } from '../helpers/checkpoint-content';
import type { Containerd, CtrEvent, EventStream } from '../helpers/containerd';
import { callTasks, runcOptions } from '../helpers/containerd-api';
import { RuncWrapper } from '../helpers/runc-wrapper';
import { ctrRunBackground, ctrRunDetached, expectExit, isGoShim, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { exists, listProcs, sleep, waitFor } from '../helpers/procfs';

jest.setTimeout(120000);

const PROCESS_SPEC_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
const STOPPED = 3;
const CREATED = 1;

function processSpec(args: string[]) {
  return { typeUrl: PROCESS_SPEC_TYPE, value: Buffer.from(JSON.stringify({ args, cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } })) };
}

/** Settles to what happened, with the time it did (ms since `t0`): a start/wait outcome. */
interface Outcome { ok: boolean; at: number; detail: string; value?: unknown }
function observe<T>(p: Promise<T>, t0: number): Promise<Outcome> {
  return p.then(
    (value) => ({ ok: true, at: Date.now() - t0, detail: '', value }),
    (err: { details?: string; message?: string }) => ({ ok: false, at: Date.now() - t0, detail: err.details ?? String(err.message) }),
  );
}

const ofTask = (id: string) => (e: CtrEvent) => e.event.container_id === id;

describe.each(lanes())('init exit races [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let wrapper: RuncWrapper;
  let stream: EventStream;
  beforeAll(async () => { stream = await containerd().events(); });
  afterAll(async () => { await stream?.stop(); });
  beforeEach(() => { wrapper = new RuncWrapper(); });
  afterEach(() => wrapper.remove());

  /** A container record (and snapshot) without a task, and its rootfs mounts for Tasks.Create. */
  async function containerRecord(c: Containerd, id: string): Promise<Mount[]> {
    expectExit(c, await c.ctr(['container', 'create', '--runtime', lane.runtime, c.image!.name, id, 'sleep', '1000']), 0);
    return rootfsMounts(c, id);
  }

  /** Create succeeded, the init has gone: Wait, State, events and Delete all say so (137). */
  async function expectStoppedAfterCreate(c: Containerd, id: string, pid: number): Promise<void> {
    await expect(callTasks(c, 'wait', { containerId: id }, 20000)).resolves.toMatchObject({ exitStatus: 137 });
    const state = await callTasks(c, 'get', { containerId: id });
    expect(state.process).toMatchObject({ pid, status: STOPPED, exitStatus: 137 });
    const exit = await stream.waitFor((e) => ofTask(id)(e) && e.topic === '/tasks/exit');
    expect(Number(exit.event.exit_status)).toBe(137);
    expect(Number(exit.event.pid)).toBe(pid);
    const topics = stream.events.filter(ofTask(id)).map((e) => e.topic);
    expect(topics.indexOf('/tasks/create')).toBeGreaterThanOrEqual(0);
    expect(topics.indexOf('/tasks/create')).toBeLessThan(topics.indexOf('/tasks/exit'));
    // A stopped init cannot be started.
    await expect(callTasks(c, 'start', { containerId: id })).rejects.toMatchObject({ details: expect.stringMatching(/stopped/) });
    await expect(callTasks(c, 'delete', { containerId: id })).resolves.toMatchObject({ exitStatus: 137 });
    expect(exists(pid)).toBe(false);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  }

  test(`init killed between runc create and Start: Create succeeds, Wait and State say 137 [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('killcreated');
    const rootfs = await containerRecord(c, id);
    wrapper.set('kill-created');
    const created = await callTasks(c, 'create', { containerId: id, rootfs, options: runcOptions({ binaryName: wrapper.binary }) });
    expect(created.pid).toBeGreaterThan(0);
    // The wrapper read the pid from ./init.pid and killed exactly that process.
    expect(wrapper.calls().find((k) => k.command === 'create')?.pid).toBe(String(created.pid));
    await expectStoppedAfterCreate(c, id, created.pid);
  });

  test(`init killed right after Create returned: Wait and State say 137 [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('killafter');
    const rootfs = await containerRecord(c, id);
    const created = await callTasks(c, 'create', { containerId: id, rootfs });
    process.kill(created.pid, 'SIGKILL');
    await expectStoppedAfterCreate(c, id, created.pid);
  });

  test(`exec racing the init's exit: the held start fails, a later start is refused, the init's exit comes last [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('execrace');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000'], wrapper.runFlags(lane)), 0);
    const init = await waitForStatus(c, id, 'RUNNING');
    wrapper.set('hold-exec');
    await callTasks(c, 'exec', { containerId: id, execId: 'held', spec: processSpec(['sleep', '1001']) });
    const t0 = Date.now();
    const waitHeld = observe(callTasks(c, 'wait', { containerId: id, execId: 'held' }, 60000), t0);
    const startHeld = observe(callTasks(c, 'start', { containerId: id, execId: 'held' }, 60000), t0);
    expect(await waitFor(() => wrapper.has('exec-held'), 15000)).toBe(true);
    const waitInit = observe(callTasks(c, 'wait', { containerId: id }, 60000), t0);
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    expect(await waitFor(() => !exists(init.pid), 10000)).toBe(true);
    await sleep(500); // the shim has reaped the init by now
    // The exit is held back while an exec is starting: the task still says RUNNING.
    expect((await callTasks(c, 'get', { containerId: id })).process?.status).toBe(2);
    // A second exec, added and started after the init's death, is refused before runc runs.
    await callTasks(c, 'exec', { containerId: id, execId: 'late', spec: processSpec(['sleep', '1002']) });
    // (The Go shim's Wait of this exec never returns: a short deadline, see below.)
    const waitLate = observe(callTasks(c, 'wait', { containerId: id, execId: 'late' }, 5000), t0);
    const startLate = await observe(callTasks(c, 'start', { containerId: id, execId: 'late' }), t0);
    expect(startLate).toMatchObject({ ok: false, detail: expect.stringContaining(`container ${id} init process is not running`) });
    await sleep(300);
    const released = Date.now() - t0;
    wrapper.set('exec-release');

    const held = await startHeld;
    expect(held).toMatchObject({ ok: false, detail: expect.stringContaining('cannot exec in a stopped container') });
    expect(held.at).toBeGreaterThanOrEqual(released);
    const initExit = await waitInit;
    expect(initExit).toMatchObject({ ok: true, value: { exitStatus: 137 } });
    // Published only once the held start could settle: after its release.
    expect(initExit.at).toBeGreaterThanOrEqual(released);
    expect(await waitHeld).toMatchObject({ ok: true });
    if (isGoShim(lane)) {
      // The Go shim never closes the wait of an exec refused by its init-exit check: that Wait
      // runs into its deadline. ferry releases it like any failed start.
      expect(await waitLate).toMatchObject({ ok: false });
    } else {
      expect(await waitLate).toMatchObject({ ok: true });
    }
    for (const execId of ['held', 'late']) {
      expect((await callTasks(c, 'get', { containerId: id, execId })).process).toMatchObject({ pid: 0, status: CREATED });
    }
    expect((await callTasks(c, 'get', { containerId: id })).process).toMatchObject({ status: STOPPED, exitStatus: 137 });
    // One exit event, the init's; no exec process anywhere; runc exec ran once (the held one).
    const exits = stream.events.filter((e) => ofTask(id)(e) && e.topic === '/tasks/exit');
    expect(exits.map((e) => [e.event.id, Number(e.event.exit_status)])).toEqual([[id, 137]]);
    expect(listProcs().filter((p) => /^sleep 100[12]$/.test(p.argv.join(' ')))).toEqual([]);
    expect(wrapper.calls().filter((k) => k.command === 'exec')).toHaveLength(1);
    for (const execId of ['held', 'late']) await callTasks(c, 'deleteProcess', { containerId: id, execId });
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`a Kill still being answered when the init dies is answered before Wait returns (and Delete and Shutdown come) [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('slowkill');
    wrapper.set('slow-kill-exit');
    const run = ctrRunBackground(c, lane, id, ['sleep', '1000'], wrapper.runFlags(lane));
    await waitForStatus(c, id, 'RUNNING');
    // runc kills at once but answers 2 s later. The exit is recorded only after the Kill was
    // answered (the Go shim's per-process mutex), so ctr run cannot delete the task — and the
    // shim cannot shut down under the Kill — before.
    const kill = await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    expectExit(c, kill, 0);
    expectExit(c, await run.done, 137);
    const order = wrapper.calls().map((k) => k.command);
    expect(order).toContain('killed');
    expect(order.indexOf('killed')).toBeLessThan(order.indexOf('delete'));
  });

  test(`without its own pid namespace, runc kill --all is done before Wait returns and Delete runs [${lane.name}]`, async () => {
    const c = containerd();
    const holder = uniqueId('pidns');
    expectExit(c, await ctrRunDetached(c, lane, holder, ['sleep', '1000']), 0);
    const holderPid = (await waitForStatus(c, holder, 'RUNNING')).pid;
    const id = uniqueId('sharedpid');
    wrapper.set('slow-kill-all');
    const run = ctrRunBackground(c, lane, id, ['sleep', '1000'], ['--with-ns', `pid:/proc/${holderPid}/ns/pid`, ...wrapper.runFlags(lane)]);
    await waitForStatus(c, id, 'RUNNING');
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGTERM', id]), 0);
    const r = await run.done;
    expectExit(c, r, 143);
    expect(r.stderr).not.toMatch(/invalid state transition/);
    const order = wrapper.calls().map((k) => k.command);
    expect(order).toContain('killed-all');
    expect(order.indexOf('delete')).toBeGreaterThan(order.indexOf('killed-all'));
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', holder]), 0);
    await waitForStatus(c, holder, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', holder]), 0);
    expectExit(c, await c.ctr(['container', 'rm', holder]), 0);
  });
});
