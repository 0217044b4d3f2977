// Issue 12, faults (point 6): runc SIGKILLed in the middle of create, exec and restore (a
// BinaryName wrapper, test/fixtures/runc-killer.sh, kills it once it has started its child:
// `runc init`, or CRIU). The call fails with a clear error; runc's state for the namespace holds
// no half-created container and no process of it is left; the shim daemon — shared with another
// container through a group — keeps serving that other container.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Containerd } from '../helpers/containerd';
import { REPO_ROOT } from '../helpers/containerd';
import { ctrRunDetached, expectExit, FERRY_RUNTIME, lanes, taskRow, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { RUNC_STATE_ROOT } from '../helpers/leaks';
import { CRIU_TAR, ctrOk, rootfsMounts, type Desc } from '../helpers/checkpoint-content';
import { runcOptions, TasksClient } from '../helpers/containerd-api';
import { listProcs, waitFor } from '../helpers/procfs';

jest.setTimeout(300_000);

const LOOP = ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];

/** Processes in the container's cgroup (any v1 hierarchy, or v2) named after the container id. */
function processesOf(c: Containerd, id: string): string[] {
  const suffix = `/${c.namespace}/${id}`;
  return listProcs().flatMap((p) => {
    try {
      const cg = fs.readFileSync(`/proc/${p.pid}/cgroup`, 'utf8');
      return cg.split('\n').some((l) => l.endsWith(suffix)) ? [`${p.pid} ${p.argv.join(' ')}`] : [];
    } catch { return []; }
  });
}

/** runc's view of the namespace: a state dir for the id, and what `runc list` says. */
function runcStateOf(c: Containerd, id: string): string[] {
  const dir = path.join(RUNC_STATE_ROOT, c.namespace, id);
  return fs.existsSync(dir) ? [`runc state dir ${dir}: ${fs.readdirSync(dir).join(' ')}`] : [];
}

/** The descriptor of the CRIU tar in a checkpoint image. */
async function criuTarOf(c: Containerd, ref: string): Promise<Desc> {
  const line = (await ctrOk(c, ['images', 'ls'])).split('\n').find((l) => l.startsWith(ref + ' '));
  if (!line) throw new Error(`image ${ref} not listed`);
  const index = JSON.parse(await ctrOk(c, ['content', 'get', line.split(/\s+/)[2]!])) as { manifests: Desc[] };
  const d = index.manifests.find((m) => m.mediaType === CRIU_TAR);
  if (!d) throw new Error(`no CRIU tar in ${ref}`);
  return d;
}

describe.each(lanes().filter((l) => l.runtime === FERRY_RUNTIME))('runc faults [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  let tmp: string;
  let wrapperDir: string;
  let config: string;
  let group: string;
  let bystander: string;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-runcfault-'));
    wrapperDir = path.join(tmp, 'bin');
    fs.mkdirSync(wrapperDir);
    fs.copyFileSync(path.join(REPO_ROOT, 'test/fixtures/runc-killer.sh'), path.join(wrapperDir, 'runc'));
    fs.chmodSync(path.join(wrapperDir, 'runc'), 0o755);
    config = path.join(tmp, 'ferry.toml');
    fs.writeFileSync(config, `BinaryName = ${JSON.stringify(path.join(wrapperDir, 'runc'))}\n`);
    // The bystander shares the daemon with every container these tests break.
    const c = containerd();
    group = uniqueId('rfgrp');
    bystander = uniqueId('bystander');
    expectExit(c, await ctrRunDetached(c, lane, bystander, LOOP, ['--label', `io.containerd.runc.v2.group=${group}`]), 0);
    await waitForStatus(c, bystander, 'RUNNING');
  });
  afterAll(async () => {
    const c = containerd();
    await c.ctr(['task', 'kill', '-s', 'SIGKILL', bystander]);
    await waitForStatus(c, bystander, 'STOPPED').catch(() => undefined);
    await c.ctr(['task', 'rm', bystander]);
    await c.ctr(['container', 'rm', bystander]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const grouped = () => ['--label', `io.containerd.runc.v2.group=${group}`, '--runtime-config-path', config];
  const arm = (cmd: string, delay = '') => fs.writeFileSync(path.join(wrapperDir, `kill-${cmd}`), delay);
  const killed = () => { try { return fs.readFileSync(path.join(wrapperDir, 'killed'), 'utf8'); } catch { return ''; } };

  /** The bystander still answers exec, and its daemon is the one it had. */
  async function bystanderServed(c: Containerd, daemon: number): Promise<void> {
    const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('by'), bystander, 'sh', '-c', 'cat /tmp/count >/dev/null; exit 7']);
    expectExit(c, r, 7);
    expect(c.shimDaemons(bystander).map((d) => d.pid)).toEqual([daemon]);
  }

  for (const delay of ['', '0.05']) {
    test(`runc killed during create${delay ? ` (after ${delay}s)` : ''}: clear error, nothing of it in runc's state, the daemon serves the others [${lane.name}]`, async () => {
      const c = containerd();
      const daemon = c.shimDaemons(bystander)[0]!.pid;
      const id = uniqueId('rkcreate');
      const before = killed();
      arm('create', delay);
      const r = await ctrRunDetached(c, lane, id, LOOP, grouped());
      expect(killed().slice(before.length)).toMatch(/killed runc create/);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/OCI runtime create failed: runc was killed by SIGKILL/);
      // Cleaned by the shim before Create answered, not later by containerd's clean-up.
      expect(runcStateOf(c, id)).toEqual([]);
      expect(await taskRow(c, id)).toBeUndefined();
      expect(await waitFor(() => runcStateOf(c, id).length === 0 && processesOf(c, id).length === 0, 10000, 100)).toBe(true);
      expect([...runcStateOf(c, id), ...processesOf(c, id)]).toEqual([]);
      await bystanderServed(c, daemon);
      // The same id can be created again (ctr run left the container record and its snapshot).
      expectExit(c, await c.ctr(['container', 'rm', id]), 0);
      expectExit(c, await ctrRunDetached(c, lane, id, LOOP, grouped()), 0);
      await waitForStatus(c, id, 'RUNNING');
      expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
      await waitForStatus(c, id, 'STOPPED');
      expectExit(c, await c.ctr(['task', 'rm', id]), 0);
      expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    });
  }

  for (const when of ['', 'late']) test(`runc killed during exec${when ? ' after it started the process, before the pid file' : ''}: clear error, no process of it left, the container and the daemon go on [${lane.name}]`, async () => {
    const c = containerd();
    const daemon = c.shimDaemons(bystander)[0]!.pid;
    const id = uniqueId('rkexec');
    expectExit(c, await ctrRunDetached(c, lane, id, LOOP, grouped()), 0);
    await waitForStatus(c, id, 'RUNNING');
    const before = killed();
    arm('exec', when);
    const r = await c.ctr(['task', 'exec', '--exec-id', 'victim', id, 'sh', '-c', 'echo started > /tmp/exec-ran; sleep 1000']);
    expect(killed().slice(before.length)).toMatch(when ? /killed runc exec after it started the process/ : /killed runc exec/);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/OCI runtime exec failed: runc was killed by SIGKILL/);
    // Nothing of the killed exec runs in the container: neither its command nor a `runc init`.
    expect(await waitFor(() => processesOf(c, id).every((p) => !/sleep 1000|runc init/.test(p)), 5000, 100)).toBe(true);
    // A later exec works, the init still runs, the bystander is served.
    expectExit(c, await c.ctr(['task', 'exec', '--exec-id', 'after', id, 'sh', '-c', 'exit 4']), 4);
    expect((await taskRow(c, id))?.status).toBe('RUNNING');
    await bystanderServed(c, daemon);
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expect(await waitFor(() => processesOf(c, id).length === 0, 10000, 100)).toBe(true);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });
  test(`runc killed during restore: clear error, nothing of it in runc's state and no process left, the daemon serves the others [${lane.name}]`, async () => {
    const c = containerd();
    const daemon = c.shimDaemons(bystander)[0]!.pid;
    const src = uniqueId('rksrc');
    const ref = `ckpt/${src}:v1`;
    // In the bystander's group: the restored container (its spec comes from the checkpoint) joins it.
    expectExit(c, await ctrRunDetached(c, lane, src, LOOP, ['--label', `io.containerd.runc.v2.group=${group}`]), 0);
    await waitForStatus(c, src, 'RUNNING');
    await waitFor(async () => (await c.ctr(['task', 'exec', '--exec-id', uniqueId('c'), src, 'cat', '/tmp/count'])).stdout.trim() !== '', 10000, 200);
    await ctrOk(c, ['container', 'checkpoint', '--task', '--rw', '--image', src, ref]);
    await c.ctr(['task', 'kill', '-s', 'SIGKILL', src]);
    await waitForStatus(c, src, 'STOPPED');
    await ctrOk(c, ['task', 'rm', src]);
    await ctrOk(c, ['container', 'rm', src]);
    const id = uniqueId('rkrestore');
    await ctrOk(c, ['container', 'restore', '--rw', id, ref]);
    await ctrOk(c, ['task', 'rm', '-f', id]);
    const mounts = await rootfsMounts(c, id);
    const checkpoint = { ...(await criuTarOf(c, ref)), annotations: {} };
    const options = runcOptions({ binaryName: path.join(wrapperDir, 'runc') });
    const api = new TasksClient(c.address, c.namespace);
    try {
      await api.create({ containerId: id, rootfs: mounts, checkpoint, options });
      const before = killed();
      arm('restore', '0.3');
      const err = await api.start(id).then(() => undefined, (e: Error) => e);
      expect(killed().slice(before.length)).toMatch(/killed runc restore/);
      expect(err).toBeDefined();
      expect((err as { details?: string }).details).toMatch(/^OCI runtime restore failed: runc was killed by SIGKILL; CRIU log \S+\/restore\.log: /);
      expect(await waitFor(() => runcStateOf(c, id).length === 0 && processesOf(c, id).length === 0, 10000, 100)).toBe(true);
      expect([...runcStateOf(c, id), ...processesOf(c, id)]).toEqual([]);
      await bystanderServed(c, daemon);
      // The record restores once runc runs through: its root filesystem came through whole
      // (runc's own clean-up of such a state dir would have deleted it through criu-root).
      await c.ctr(['task', 'rm', '-f', id]);
      await api.create({ containerId: id, rootfs: mounts, checkpoint, options });
      await api.start(id);
      await waitForStatus(c, id, 'RUNNING');
      const count = async () => Number((await c.ctr(['task', 'exec', '--exec-id', uniqueId('c'), id, 'cat', '/tmp/count'])).stdout.trim());
      const n = await count();
      expect(n).toBeGreaterThan(0);
      expect(await waitFor(async () => (await count()) > n, 10000, 200)).toBe(true);
    } finally {
      api.close();
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitForStatus(c, id, 'STOPPED').catch(() => undefined);
      await c.ctr(['task', 'rm', '-f', id]);
      await c.ctr(['container', 'rm', id]);
      await c.ctr(['image', 'rm', '--sync', ref]);
    }
  });
});
