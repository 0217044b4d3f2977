// Issue 3, point 11: containers with the same group key share one shim daemon (runc-v2's
// `io.containerd.runc.v2.group` annotation; `ctr run --label` copies labels into annotations),
// and FERRY_GROUP_BY_NAMESPACE=1 puts a whole namespace in one daemon. Each task keeps its own
// state, exit code and events; killing one touches no other; the daemon exits after its last
// task and its socket goes with it. The label test also runs against the Go shim
// (FERRY_E2E_RUNTIMES=io.containerd.runc.v2), which groups by the same annotation.
import * as fs from 'node:fs';
import { Containerd, CtrEvent, startContainerd } from '../helpers/containerd';
import { ctrRunDetached, expectExit, FERRY_RUNTIME, isGoShim, Lane, lanes, taskList, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { exists, waitFor } from '../helpers/procfs';

jest.setTimeout(240000);

const N = 20;

/** A container whose init exits with `code` on SIGTERM (pid 1 needs a handler to die of it). */
const exitOnTerm = (code: number) => ['sh', '-c', `trap "exit ${code}" TERM; while :; do sleep 0.1; done`];

async function runGroupLifecycle(c: Containerd, lane: Lane, ids: string[], runFlags: (id: string) => string[]): Promise<void> {
  const events = await c.events();
  try {
    const results = await Promise.all(ids.map((id, i) => ctrRunDetached(c, lane, id, exitOnTerm(i + 1), runFlags(id))));
    results.forEach((r) => expectExit(c, r, 0));
    for (const id of ids) await waitForStatus(c, id, 'RUNNING');

    // One daemon serves them all, and every bundle names the same socket.
    const daemons = c.shimDaemons();
    expect(daemons).toHaveLength(1);
    const sockets = new Set(ids.map((id) => c.shimSocketPath(id)));
    expect(sockets.size).toBe(1);
    const socket = [...sockets][0]!;
    expect(fs.existsSync(socket)).toBe(true);
    const daemonPid = daemons[0]!.pid;

    // Killing one container touches no other.
    const victim = ids[7]!;
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', victim]), 0);
    await waitForStatus(c, victim, 'STOPPED');
    const exit = await events.waitFor((e) => e.topic === '/tasks/exit' && e.event.container_id === victim);
    expect(exit.event.exit_status).toBe(137);
    const rows = await taskList(c);
    for (const id of ids) if (id !== victim) expect(rows.find((r) => r.id === id)?.status).toBe('RUNNING');
    expectExit(c, await c.ctr(['task', 'rm', victim]), 0);
    expect(exists(daemonPid)).toBe(true);

    // Every other container exits with its own code.
    const rest = ids.filter((id) => id !== victim);
    await Promise.all(rest.map(async (id) => expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGTERM', id]), 0)));
    const exits = await Promise.all(rest.map((id) => events.waitFor((e: CtrEvent) => e.topic === '/tasks/exit' && e.event.container_id === id)));
    rest.forEach((id, k) => {
      const code = ids.indexOf(id) + 1;
      expect(exits[k]!.event.exit_status).toBe(code);
    });
    for (const id of rest) await waitForStatus(c, id, 'STOPPED');

    // Deleting all but the last keeps the daemon; deleting the last ends it and its socket.
    const last = rest.pop()!;
    await Promise.all(rest.map(async (id) => expectExit(c, await c.ctr(['task', 'rm', id]), 0)));
    expect(exists(daemonPid)).toBe(true);
    expectExit(c, await c.ctr(['task', 'rm', last]), 0);
    await waitFor(() => !exists(daemonPid), 15000);
    expect(exists(daemonPid)).toBe(false);
    if (!isGoShim(lane)) expect(fs.existsSync(socket)).toBe(false); // the Go shim may leave it
    for (const id of ids) expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  } finally {
    await events.stop();
  }
}

describe.each(lanes())('grouping [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`${N} containers labelled with one io.containerd.runc.v2.group share one daemon, each with its own lifecycle [${lane.name}]`, async () => {
    const c = containerd();
    const group = uniqueId('g');
    const ids = Array.from({ length: N }, (_, i) => uniqueId(`grp${i}`));
    await runGroupLifecycle(c, lane, ids, () => ['--label', `io.containerd.runc.v2.group=${group}`]);
  });

  test(`a new member started as the group's last task is deleted gets a working daemon [${lane.name}]`, async () => {
    // Delete the last task and start a new member of the group at the same moment, many times:
    // the new container must always come up (never be handed the exiting daemon).
    const c = containerd();
    for (let round = 0; round < 8; round++) {
      const group = uniqueId('race');
      const label = ['--label', `io.containerd.runc.v2.group=${group}`];
      const a = uniqueId('racea');
      const b = uniqueId('raceb');
      expectExit(c, await ctrRunDetached(c, lane, a, ['sh', '-c', 'exit 0'], label), 0);
      await waitForStatus(c, a, 'STOPPED');
      const [rm, run] = await Promise.all([
        c.ctr(['task', 'rm', a]),
        new Promise((r) => setTimeout(r, round * 15)).then(() => ctrRunDetached(c, lane, b, ['sleep', '1000'], label)),
      ]);
      expectExit(c, rm, 0);
      expectExit(c, run, 0);
      await waitForStatus(c, b, 'RUNNING');
      expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', b]), 0);
      await waitForStatus(c, b, 'STOPPED');
      expectExit(c, await c.ctr(['task', 'rm', b]), 0);
      for (const id of [a, b]) expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    }
    await waitFor(() => c.shimDaemons().length === 0, 15000);
    expect(c.shimDaemons()).toHaveLength(0);
  });
});

// ferry's own option: one daemon for every container of a namespace.
describe.each(lanes().filter((l) => l.runtime === FERRY_RUNTIME))('grouping by namespace [$name]', (lane) => {
  let c: Containerd | undefined;
  beforeAll(async () => {
    c = await startContainerd({ version: lane.containerd, grpcShim: lane.grpc, env: { FERRY_GROUP_BY_NAMESPACE: '1' } });
  }, 120000);
  afterAll(async () => { await c?.stop(); }, 120000);

  test(`FERRY_GROUP_BY_NAMESPACE=1: ${N} unlabelled containers share one daemon [${lane.name}]`, async () => {
    const ids = Array.from({ length: N }, (_, i) => uniqueId(`ns${i}`));
    await runGroupLifecycle(c!, lane, ids, () => []);
  });
});
