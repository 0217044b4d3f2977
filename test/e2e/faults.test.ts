// Issue 12, faults (points 3 and 4): what dies around the shim must not cost a task its status.
//  3. containerd SIGKILLed with running tasks, some with a daemon each and some in one group,
//     and started again: every task listed with its pid, exec/kill/delete work, exit statuses
//     right; the same while a checkpoint of one of them is running (the shim finishes it, the
//     container runs on, thawed).
//  4. a shim daemon SIGKILLed, ungrouped and grouped with 5 members: containerd runs the shim's
//     `delete` for every bundle it held, every task is reported exited 137, nothing is left.
// The full counts run under `make soak` (FERRY_SOAK=full).
import * as os from 'node:os';
import { callTasks } from '../helpers/containerd-api';
import type { Containerd } from '../helpers/containerd';
import { runningNormally, tracerPid } from '../helpers/freezer';
import { ctrRunDetached, expectExit, isGoShim, lanes, taskList, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { isClean, settledLeftovers } from '../helpers/leaks';
import { figureName, recordFigures } from '../helpers/diagnostics';
import { isRunning, waitFor } from '../helpers/procfs';

const FULL = process.env.FERRY_SOAK === 'full';
const TASKS = FULL ? 20 : 6;

jest.setTimeout(FULL ? 1800_000 : 300_000);

/** An init that exits with `code` on SIGTERM (pid 1 needs a handler to die of it). */
const exitOnTerm = (code: number) => ['sh', '-c', `trap "exit ${code}" TERM; i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done`];

/** Starts `n` tasks, the first half with a daemon each, the rest in one group. Returns ids and exit codes. */
async function startTasks(c: Containerd, lane: Lane, n: number, prefix: string): Promise<{ ids: string[]; codes: Map<string, number>; keys: string[] }> {
  const group = uniqueId(`${prefix}grp`);
  const ids = Array.from({ length: n }, (_, i) => uniqueId(`${prefix}${i}`));
  const codes = new Map(ids.map((id, i) => [id, 20 + i]));
  const grouped = (i: number) => i >= n / 2;
  const runs = await Promise.all(ids.map((id, i) =>
    ctrRunDetached(c, lane, id, exitOnTerm(codes.get(id)!), grouped(i) ? ['--label', `io.containerd.runc.v2.group=${group}`] : [])));
  runs.forEach((r) => expectExit(c, r, 0));
  for (const id of ids) await waitForStatus(c, id, 'RUNNING');
  return { ids, codes, keys: [group, ...ids] };
}

/** exec, SIGTERM, Wait and Delete for every task, checking each exit status. */
async function execKillDeleteAll(c: Containerd, ids: string[], codes: Map<string, number>): Promise<void> {
  await Promise.all(ids.map(async (id, i) => {
    const r = await c.ctr(['task', 'exec', '--exec-id', `after-${i}`, id, 'sh', '-c', `cat /tmp/count >/dev/null && exit ${i % 5 + 1}`]);
    expectExit(c, r, i % 5 + 1);
    const waited = callTasks(c, 'wait', { containerId: id });
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGTERM', id]), 0);
    expect((await waited).exitStatus).toBe(codes.get(id));
    expect((await callTasks(c, 'delete', { containerId: id })).exitStatus).toBe(codes.get(id));
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  }));
}

describe.each(lanes())('faults [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`containerd SIGKILLed with ${TASKS} running tasks (ungrouped and grouped) and restarted: all listed, exec/kill/delete work, exit statuses right [${lane.name}]`, async () => {
    const c = containerd();
    const { ids, codes, keys } = await startTasks(c, lane, TASKS, 'ctdkill');
    const before = new Map((await taskList(c)).map((t) => [t.id, t.pid]));
    const daemons = c.shimDaemons().map((d) => d.pid);
    await c.restart('SIGKILL');
    for (const pid of daemons) expect(isRunning(pid)).toBe(true);
    const after = await taskList(c);
    for (const id of ids) {
      expect(after.find((t) => t.id === id)).toEqual({ id, pid: before.get(id), status: 'RUNNING' });
    }
    await execKillDeleteAll(c, ids, codes);
    const left = await settledLeftovers(c, keys);
    recordFigures(figureName('faults-containerd-killed', lane), { lane: lane.name, tasks: TASKS, listedAfterRestart: ids.filter((id) => after.some((t) => t.id === id && t.status === 'RUNNING')).length, leftovers: left, loadavg: os.loadavg().map((l) => +l.toFixed(2)) });
    expect(isClean(left) ? {} : left).toEqual({});
  });

  test(`containerd SIGKILLed while a checkpoint runs: the shim finishes it, the task runs on thawed, and works after the restart [${lane.name}]`, async () => {
    const c = containerd();
    const { ids, codes, keys } = await startTasks(c, lane, 2, 'ckptkill');
    const target = ids[0]!;
    const pid = (await waitForStatus(c, target, 'RUNNING')).pid;
    const checkpoint = callTasks(c, 'checkpoint', { containerId: target }, 120000);
    checkpoint.catch(() => undefined);
    // CRIU seizes the task once it has frozen it: that is "while a checkpoint runs".
    expect(await waitFor(() => tracerPid(pid) !== 0, 60000, 5)).toBe(true);
    await c.restart('SIGKILL');
    await expect(checkpoint).rejects.toBeDefined();
    // The dump completes without containerd (leave-running): the container is thawed again.
    expect(await waitFor(() => runningNormally(pid) === undefined, 60000, 100)).toBe(true);
    const row = await waitForStatus(c, target, 'RUNNING');
    expect(row.pid).toBe(pid);
    // Still counting after the restart.
    const count = async () => Number((await c.ctr(['task', 'exec', '--exec-id', uniqueId('cnt'), target, 'cat', '/tmp/count'])).stdout.trim());
    const n = await count();
    expect(await waitFor(async () => (await count()) > n, 10000, 200)).toBe(true);
    // A checkpoint works again through the restarted containerd.
    const again = await callTasks(c, 'checkpoint', { containerId: target }, 120000);
    expect(again.descriptors.length).toBeGreaterThan(0);
    expectExit(c, await c.ctr(['content', 'rm', ...again.descriptors.map((d) => d.digest)]), 0);
    await execKillDeleteAll(c, ids, codes);
    const left = await settledLeftovers(c, keys);
    expect(isClean(left) ? {} : left).toEqual({});
  });

  for (const members of [1, 5]) {
    test(`a shim daemon holding ${members} task(s) SIGKILLed: each reported exited 137, nothing left [${lane.name}]`, async () => {
      const c = containerd();
      const group = uniqueId('dkgrp');
      const ids = Array.from({ length: members }, (_, i) => uniqueId(`dkill${i}`));
      const label = members > 1 ? ['--label', `io.containerd.runc.v2.group=${group}`] : [];
      const events = await c.events();
      try {
        for (const id of ids) expectExit(c, await ctrRunDetached(c, lane, id, ['sh', '-c', 'while :; do sleep 0.2; done'], label), 0);
        const pids = await Promise.all(ids.map(async (id) => (await waitForStatus(c, id, 'RUNNING')).pid));
        const daemons = c.shimDaemons();
        expect(daemons).toHaveLength(1);
        process.kill(daemons[0]!.pid, 'SIGKILL');
        const exits = await Promise.all(ids.map((id) => events.waitFor((e) => e.topic === '/tasks/exit' && e.event.container_id === id, 30000)));
        for (const e of exits) expect(Number(e.event.exit_status ?? 0)).toBe(137);
        await Promise.all(ids.map((id) => events.waitFor((e) => e.topic === '/tasks/delete' && e.event.container_id === id, 30000)));
        expect(await waitFor(async () => (await taskList(c)).every((t) => !ids.includes(t.id)), 15000, 100)).toBe(true);
        for (const p of pids) expect(await waitFor(() => !isRunning(p), 10000, 100)).toBe(true);
        for (const id of ids) expectExit(c, await c.ctr(['container', 'rm', id]), 0);
        const left = await settledLeftovers(c, members > 1 ? [group] : ids);
        // The Go shim's delete leaves the dead daemon's socket (a known leak, docs/testing.md).
        if (isGoShim(lane)) left.sockets = [];
        recordFigures(figureName(`faults-daemon-killed-${members}`, lane), { lane: lane.name, members, exits: exits.map((e) => Number(e.event.exit_status ?? 0)), leftovers: left });
        expect(isClean(left) ? {} : left).toEqual({});
      } finally {
        await events.stop();
      }
    });
  }
});

