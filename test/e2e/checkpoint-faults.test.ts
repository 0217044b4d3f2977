// Issue 12, faults around CRIU (points 5 and 7): a checkpoint or a restore that fails half-way
// must leave the container as it was and no checkpoint that could be taken for a good one.
//  5. CRIU SIGKILLed in the middle of a dump (a criu_path wrapper that kills it once it has
//     frozen and seized the task), and a dump that runs out of space (a small tmpfs as image and
//     work path): the checkpoint fails with a clear error; the container runs on (not frozen,
//     not stopped, not traced, still counting); no image is left in containerd nor in the
//     image path; a later checkpoint works.
//  7. A restore whose CRIU fails half-way, after it has forked the restored tree (the
//     checkpoint names an open file the restored root does not have — a damage no check of the
//     images' completeness can see): a clear error quoting CRIU's log line, no process left,
//     and the same container record restores from a good checkpoint afterwards.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Containerd } from '../helpers/containerd';
import { REPO_ROOT } from '../helpers/containerd';
import { callTasks, runcCheckpointOptions, TasksClient } from '../helpers/containerd-api';
import { contentBytes, criuTarOf, ctrOk, editTar, ingestCheckpoint, restoreLeftovers, rootfsMounts } from '../helpers/checkpoint-content';
import { runningNormally } from '../helpers/freezer';
import { ctrRunDetached, expectExit, FERRY_RUNTIME, lanes, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { listProcs, waitFor } from '../helpers/procfs';

jest.setTimeout(300_000);

const COUNTER = ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];

async function readCount(c: Containerd, id: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('cat'), id, 'cat', '/tmp/count']);
    const n = Number.parseInt(r.stdout.trim(), 10);
    if (r.code === 0 && Number.isInteger(n)) return n;
    if (attempt >= 10) throw new Error(`cannot read the count of ${id}: ${r.stderr}${r.stdout}`);
  }
}

/** The container keeps running as before: not frozen, stopped or traced, and its counter goes on. */
async function expectRunningOn(c: Containerd, id: string, pid: number): Promise<void> {
  expect(await waitFor(() => runningNormally(pid) === undefined, 20000, 100) ? undefined : runningNormally(pid)).toBeUndefined();
  expect((await waitForStatus(c, id, 'RUNNING')).pid).toBe(pid);
  const n = await readCount(c, id);
  expect(await waitFor(async () => (await readCount(c, id)) > n + 2, 15000, 200)).toBe(true);
}

/** Checkpoint blobs containerd holds (a failed Task.Checkpoint must have stored none). */
async function criuTarsInContentStore(c: Containerd): Promise<string[]> {
  const r = await c.ctr(['content', 'ls']);
  expectExit(c, r, 0);
  return r.stdout.split('\n').filter((l) => /criu\.checkpoint|checkpoint\.criu/.test(l));
}

/** Processes whose root directory lies under `dir` (a container's rootfs in a bundle). */
function processesRootedIn(dir: string): string[] {
  return listProcs().flatMap((p) => {
    try {
      const root = fs.readlinkSync(`/proc/${p.pid}/root`);
      return root.startsWith(dir) ? [`${p.pid} ${p.argv.join(' ')} (root ${root})`] : [];
    } catch { return []; }
  });
}

async function removeTask(c: Containerd, id: string): Promise<void> {
  await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
  await waitForStatus(c, id, 'STOPPED').catch(() => undefined);
  await c.ctr(['task', 'rm', '-f', id]);
  await c.ctr(['container', 'rm', id]);
}

describe.each(lanes().filter((l) => l.runtime === FERRY_RUNTIME))('checkpoint faults [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ckfault-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test(`CRIU SIGKILLed mid-dump: clear error, the container runs on thawed, no checkpoint stored, the next one works [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('criukill');
    const dir = path.join(tmp, id);
    fs.mkdirSync(dir);
    const wrapper = path.join(dir, 'criu');
    fs.copyFileSync(path.join(REPO_ROOT, 'test/fixtures/criu-killer.sh'), wrapper);
    fs.chmodSync(wrapper, 0o755);
    const config = path.join(dir, 'ferry.toml');
    fs.writeFileSync(config, `CriuPath = ${JSON.stringify(wrapper)}\n`);
    expectExit(c, await ctrRunDetached(c, lane, id, COUNTER, ['--runtime-config-path', config]), 0);
    const pid = (await waitForStatus(c, id, 'RUNNING')).pid;
    await readCount(c, id);
    try {
      const before = await criuTarsInContentStore(c);
      fs.writeFileSync(path.join(dir, 'target.pid'), String(pid));
      const err = await callTasks(c, 'checkpoint', { containerId: id }, 120000).then(() => undefined, (e: Error) => e);
      expect(fs.readFileSync(path.join(dir, 'killed'), 'utf8')).toMatch(/killed criu/);
      expect(err).toBeDefined();
      expect((err as { details?: string }).details).toMatch(/^runc checkpoint failed: .*; CRIU log \S+\/dump\.log: CRIU stopped before it finished \(killed or crashed\)/);
      await expectRunningOn(c, id, pid);
      expect(await criuTarsInContentStore(c)).toEqual(before);
      // The next checkpoint (the wrapper lets it through) works and the container still runs.
      const ok = await callTasks(c, 'checkpoint', { containerId: id }, 120000);
      expect(ok.descriptors.length).toBeGreaterThan(0);
      expectExit(c, await c.ctr(['content', 'rm', ...ok.descriptors.map((d) => d.digest)]), 0);
      await expectRunningOn(c, id, pid);
    } finally {
      await removeTask(c, id);
    }
  });

  test(`a dump into a full filesystem: clear error naming the lack of space, the container runs on, nothing partial left [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('fullfs');
    const mnt = path.join(tmp, `${id}-tmpfs`);
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'ferry-test-tmpfs', mnt]);
    try {
      const work = path.join(mnt, 'work');
      const image = path.join(mnt, 'image');
      const config = path.join(tmp, `${id}.toml`);
      fs.writeFileSync(config, `CriuWorkPath = ${JSON.stringify(work)}\n`);
      // A shell holding 4 MB in a variable: its pages cannot fit in 512 KiB.
      const big = ['sh', '-c', 'x=$(head -c 4000000 /dev/zero | tr "\\0" a); i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];
      expectExit(c, await ctrRunDetached(c, lane, id, big, ['--runtime-config-path', config]), 0);
      const pid = (await waitForStatus(c, id, 'RUNNING')).pid;
      await waitFor(async () => (await readCount(c, id)) > 3, 20000, 200);
      try {
        const before = await criuTarsInContentStore(c);
        const err = await callTasks(c, 'checkpoint', { containerId: id, options: runcCheckpointOptions({ imagePath: image, workPath: work }) }, 120000)
          .then(() => undefined, (e: Error) => e);
        expect(err).toBeDefined();
        expect((err as { details?: string }).details).toMatch(/^runc checkpoint failed: .*; CRIU log \S+\/dump\.log: \S+ Error \(criu\/[a-z-]+\.c:\d+\): .*No space left on device(: unknown)?$/);
        await expectRunningOn(c, id, pid);
        expect(await criuTarsInContentStore(c)).toEqual(before);
        // The partial images are gone with the dir ferry created for them; CRIU's log stays.
        expect(fs.existsSync(image)).toBe(false);
        expect(fs.readdirSync(work)).toEqual(['dump.log']);
      } finally {
        await removeTask(c, id);
      }
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe.each(lanes().filter((l) => l.runtime === FERRY_RUNTIME))('restore faults [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);

  test(`a restore whose CRIU fails half-way: the error quotes CRIU, no process is left, the record restores from a good checkpoint [${lane.name}]`, async () => {
    const c = containerd();
    const src = uniqueId('heldsrc');
    const ref = `ckpt/${src}:v1`;
    // fd 3 holds /tmp/held open for the whole life of the shell: CRIU records it by name.
    const holder = ['sh', '-c', 'echo held > /tmp/held; exec 3</tmp/held; i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];
    expectExit(c, await ctrRunDetached(c, lane, src, holder), 0);
    await waitForStatus(c, src, 'RUNNING');
    await waitFor(async () => (await readCount(c, src)) >= 20, 20000, 200);
    await ctrOk(c, ['container', 'checkpoint', '--task', '--rw', '--image', src, ref]);
    const atCheckpoint = await readCount(c, src);
    await removeTask(c, src);
    const good = await criuTarOf(c, ref);
    const goodTar = await contentBytes(c, good.digest);
    // The damage: files.img names the held file tmp/gone (same length, so the protobuf stays
    // valid and every image is whole); the restored root has no such file. CRIU finds out only
    // when the restored task opens its files, after it has forked the process tree.
    const damaged = await ingestCheckpoint(c, editTar(goodTar, (d) => {
      const img = path.join(d, 'files.img');
      const bytes = fs.readFileSync(img);
      const at = bytes.indexOf('tmp/held');
      expect(at).toBeGreaterThan(0);
      bytes.write('tmp/gone', at);
      fs.writeFileSync(img, bytes);
    }));
    const id = uniqueId('halfway');
    await ctrOk(c, ['container', 'restore', '--rw', id, ref]);
    await ctrOk(c, ['task', 'rm', '-f', id]);
    const mounts = await rootfsMounts(c, id);
    const api = new TasksClient(c.address, c.namespace);
    try {
      await api.create({ containerId: id, rootfs: mounts, checkpoint: { ...damaged, annotations: {} } });
      const err = await api.start(id).then(() => undefined, (e: Error) => e);
      expect(err).toBeDefined();
      // "1:" is the restored task's pid in its namespace: CRIU failed inside the forked tree.
      expect((err as { details?: string }).details).toMatch(/^OCI runtime restore failed: .*; CRIU log \S+\/restore\.log: \(\S+\)\s+1: Error \(criu\/files-reg\.c:\d+\): Can't open file tmp\/gone on restore: No such file or directory(: unknown)?$/);
      // No restored process survives the failure, not even before the task is deleted; no runc
      // container, nothing half-created once it is.
      expect(processesRootedIn(c.state)).toEqual([]);
      expect(fs.existsSync(`/run/containerd/runc/${c.namespace}/${id}`)).toBe(false);
      await c.ctr(['task', 'rm', '-f', id]);
      expect(await restoreLeftovers(c, id)).toEqual([]);
      // The same container record restores from the good checkpoint.
      await api.create({ containerId: id, rootfs: mounts, checkpoint: { ...good, annotations: {} } });
      await api.start(id);
      await waitForStatus(c, id, 'RUNNING');
      const n = await readCount(c, id);
      expect(n).toBeGreaterThanOrEqual(atCheckpoint - 50);
      expect(await waitFor(async () => (await readCount(c, id)) > n, 10000, 200)).toBe(true);
    } finally {
      api.close();
      await removeTask(c, id);
      await c.ctr(['image', 'rm', '--sync', ref]);
    }
  });
});
