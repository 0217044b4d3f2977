// Issue 9, items 4–6 and 8: checkpoint and restore through containerd 2.1's CRI, the
// Kubernetes paths (KEP-2008 CheckpointContainer; restore by CreateContainer with a checkpoint
// image). containerd 1.7's CRI has no CheckpointContainer (cri-lifecycle.test.ts shows it).
//  - CheckpointContainer to a kubelet-style location: containerd pauses the task before it asks
//    the shim, the container keeps running, the archive holds what the runc handler's holds
//    (dump.log and stats-dump included), checkpointctl reads it.
//  - Restore: the archive as a checkpoint OCI image (archive at / of a scratch image), the
//    image of CreateContainer in a new pod; StartContainer restores through the shim and the
//    counter continues. The base image comes from a loopback registry: containerd pulls
//    config.dump's rootfsImageRef over the network on every such restore.
//  - Pod rules: a checkpoint with a private pid namespace is not restored into a pod that
//    shares one, nor the reverse: a clear CRI error, nothing created.
//  - Bad input: clear CRI errors, nothing half-made, the checkpointed container still running.
// Lanes: containerd 2.1 only; FERRY_E2E_RUNTIMES=io.containerd.runc.v2 runs it with the runc
// handler (the reference: it restores without the pod rules, see the test).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ContainerState, NamespaceMode } from '../../api/gen/k8s/cri/v1/api';
import { CONTAINERD2_DIR, Containerd, CRI_NAMESPACE, EventStream, REPO_ROOT, startContainerd } from '../helpers/containerd';
import { CriClient, isCriError } from '../helpers/cri';
import { checkpointThroughCri, CounterPod, pushTestImage, readCounter, runCounterPod, waitForCount } from '../helpers/cri-checkpoint';
import { CRI_HANDLERS } from '../helpers/cri-config';
import { podFootprint, podLeftovers } from '../helpers/cri-footprint';
import { writeCheckpointImage } from '../helpers/checkpoint-image';
import { isGoShim, Lane, lanes } from '../helpers/lanes';
import { listProcs, mountsUnder, waitFor } from '../helpers/procfs';
import { Registry, startRegistry } from '../helpers/registry';

jest.setTimeout(240000);

const run = promisify(execFile);

/** Names in a tar (`tar -tf`), CRIU image names reduced to their kind (core-42.img → core-N.img, tmpfs-dev-7.tar.gz.img → tmpfs-dev-N.tar.gz.img). */
async function archiveNames(file: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tf', file]);
  return [...new Set(stdout.split('\n').filter(Boolean).map((n) => n.replace(/-\d+((?:\.[a-z]+)*\.img)$/, '-N$1')))].sort();
}

const lanes21 = lanes().filter((l) => l.containerd === '2.1');

/** CRIU processes (any mode) working in a directory under `dir` (CRIU's cwd is its work dir). */
function criuProcessesUnder(dir: string): string[] {
  return listProcs()
    .filter((p) => /^criu\b/.test(p.argv.join(' ')))
    .filter((p) => {
      try { return fs.readlinkSync(`/proc/${p.pid}/cwd`).startsWith(dir); } catch { return false; }
    })
    .map((p) => `${p.pid} ${p.argv.join(' ')}`);
}

describe.each(lanes21)('CRI checkpoint and restore: $name', (lane: Lane) => {
  const handler: string = isGoShim(lane) ? CRI_HANDLERS.runc : CRI_HANDLERS.ferry;
  let registry: Registry;
  let c: Containerd;
  let cri: CriClient;
  let image: string;
  let events: EventStream;
  let pods = 0;
  const checkpoints = () => path.join(c.dir, 'checkpoints');

  beforeAll(async () => {
    registry = await startRegistry({ tls: false, logRequests: true });
    c = await startContainerd({ version: '2.1', cri: true });
    cri = c.criClient();
    image = await pushTestImage(c, registry);
    await cri.image('pullImage', { image: { image } });
    events = await c.events();
  }, 180000);
  afterAll(async () => {
    await events?.stop();
    cri?.close();
    await c?.stop();
    await registry?.stop();
  }, 120000);

  const counterPod = (name: string, h = handler, pidMode?: NamespaceMode): Promise<CounterPod> =>
    runCounterPod(c, cri, { name: `${name}-${++pods}`, image, handler: h, pidMode });

  /** A checkpoint image of `archive`, imported into CRI's namespace (of `into`); returns its name. */
  async function importCheckpointImage(archive: string, name: string, into = c): Promise<string> {
    const ref = `localhost/ferry-checkpoint/${name}:latest`;
    const file = path.join(into.dir, `${name}.oci.tar`);
    writeCheckpointImage(file, { archive: fs.readFileSync(archive), name: ref, containerName: 'counter' });
    const r = await into.ctr(['images', 'import', file], { namespace: CRI_NAMESPACE, timeoutMs: 60000 });
    if (r.code !== 0) throw new Error(`import of ${ref}: ${r.stderr}`);
    return ref;
  }

  const registryResolves = () => (registry.log().match(/"(?:HEAD|GET) \/v2\/ferry-busybox\/manifests\/sha256:/g) ?? []).length;

  let archive: string; // the ferry (or runc, for the Go-shim lane) archive of the first test
  let original: CounterPod;

  test('CheckpointContainer: paused by containerd first, the container keeps running, the archive is complete, checkpointctl reads it', async () => {
    original = await counterPod('ckpt');
    await waitForCount(cri, original.containerId, 2);
    const before = await readCounter(cri, original.containerId);
    archive = await checkpointThroughCri(cri, original, checkpoints());
    expect(path.basename(archive)).toMatch(/^checkpoint-ckpt-\d+_default-counter-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.tar$/);

    // containerd paused the task, the shim checkpointed it, containerd resumed it. (The Go
    // shim publishes no /tasks/checkpointed; ferry does, so its place in the order shows.)
    const id = original.containerId;
    const expected = isGoShim(lane) ? ['/tasks/paused', '/tasks/resumed'] : ['/tasks/paused', '/tasks/checkpointed', '/tasks/resumed'];
    const order = await waitFor(() => {
      const topics = events.events.filter((e) => e.event.container_id === id && ['/tasks/paused', '/tasks/checkpointed', '/tasks/resumed'].includes(e.topic)).map((e) => e.topic);
      return topics.length >= expected.length ? topics : undefined;
    }, 10000);
    expect(order).toEqual(expected);

    // Leave-running: it goes on counting.
    expect(await cri.containerState(id)).toBe(ContainerState.CONTAINER_RUNNING);
    await waitForCount(cri, id, before + 2);

    const names = await archiveNames(archive);
    for (const n of ['checkpoint/', 'checkpoint/core-N.img', 'checkpoint/pagemap-N.img', 'checkpoint/descriptors.json', 'config.dump', 'spec.dump', 'status', 'status.dump', 'container.log', 'rootfs-diff.tar', 'dump.log', 'stats-dump']) {
      expect(names).toContain(n);
    }
    const config = JSON.parse((await run('tar', ['-xOf', archive, 'config.dump'])).stdout) as { runtime: string; rootfsImageRef: string };
    expect(config.runtime).toBe(isGoShim(lane) ? 'io.containerd.runc.v2' : 'io.containerd.ferry.v2');
    expect(config.rootfsImageRef).toMatch(new RegExp(`^${registry.host.replace('.', '\\.')}/ferry-busybox@sha256:[0-9a-f]{64}$`));

    const show = await run('checkpointctl', ['show', archive]);
    expect(show.stdout).toMatch(/counter .*containerd/);
    const stats = await run('checkpointctl', ['inspect', '--stats', archive]);
    expect(stats.stdout).toMatch(/CRIU dump statistics[\s\S]*Pages written/);

    if (!isGoShim(lane)) {
      // The same files as containerd's own runc handler and ferry in runc's place write.
      for (const h of [CRI_HANDLERS.runc, CRI_HANDLERS.ferryAsRunc]) {
        const ref = await counterPod(`ref-${h}`, h);
        await waitForCount(cri, ref.containerId, 2);
        const refArchive = await checkpointThroughCri(cri, ref, checkpoints());
        expect(names).toEqual(await archiveNames(refArchive));
        await cri.removePod(ref.pod.id);
      }
    }
  });

  test('restore through CreateContainer with a checkpoint image: the base image is pulled again, the counter continues', async () => {
    const checkpointImage = await importCheckpointImage(archive, 'counter');
    const atCheckpoint = Number((await run('tar', ['-xOf', archive, 'container.log'])).stdout.trim().split('\n').pop()!.split(' ').pop());
    const resolvesBefore = registryResolves();
    const target = await cri.runPod({ name: `restored-${++pods}`, runtimeHandler: handler, logDirectory: path.join(c.dir, 'pod-logs', `restored-${pods}`) });
    const id = await cri.createContainer(target, { metadata: { name: 'counter' }, image: { image: checkpointImage } });
    expect(registryResolves()).toBeGreaterThan(resolvesBefore); // 2.1.9 asks the registry for rootfsImageRef
    await cri.runtime('startContainer', { containerId: id });
    await cri.waitForState(id, ContainerState.CONTAINER_RUNNING);

    // The restored process continues from the checkpoint (not from 1) and keeps counting.
    const restored = await readCounter(cri, id);
    expect(restored).toBeGreaterThanOrEqual(atCheckpoint);
    await waitForCount(cri, id, restored + 2);
    const status = await cri.runtime('containerStatus', { containerId: id });
    expect(status.status!.annotations['io.kubernetes.cri.checkpoint.restored'] ?? status.status!.annotations['restored']).toBeDefined();

    expect(c.shimDaemons(target.id)).toHaveLength(1);
    const footprint = await podFootprint(c, cri, target.id, [id], path.join(c.dir, 'runc', handler));
    await cri.removePod(target.id);
    expect(await podLeftovers(c, footprint)).toEqual([]);
    expect(await cri.containerState(original.containerId)).toBe(ContainerState.CONTAINER_RUNNING);
  });

  test('restore through CreateContainer with the archive path: the counter continues', async () => {
    const target = await cri.runPod({ name: `bypath-${++pods}`, runtimeHandler: handler, logDirectory: path.join(c.dir, 'pod-logs', `bypath-${pods}`) });
    const id = await cri.createContainer(target, { metadata: { name: 'counter' }, image: { image: archive } });
    await cri.runtime('startContainer', { containerId: id });
    const restored = await readCounter(cri, id);
    expect(restored).toBeGreaterThan(1);
    await waitForCount(cri, id, restored + 2);
    await cri.removePod(target.id);
  });

  // The pod rules are ferry's (Podman's pod restore logic); containerd's runc shim restores
  // a private-pid checkpoint into a shared-pid pod without a word.
  if (!isGoShim(lane)) {
    // By image (spec.dump comes along, ../spec.dump for the shim) or by archive path (containerd
    // leaves spec.dump out; the shim reads the pid namespace from the CRIU images).
    const refusal = async (archivePath: string, targetPid: NamespaceMode, expected: RegExp, by: 'image' | 'path' = 'image') => {
      const checkpointImage = by === 'image' ? await importCheckpointImage(archivePath, `rules-${++pods}`) : archivePath;
      const name = `rules-target-${pods}`;
      const target = await cri.runPod({ name, runtimeHandler: handler, logDirectory: path.join(c.dir, 'pod-logs', name), pidMode: targetPid });
      const id = await cri.createContainer(target, { metadata: { name: 'counter' }, image: { image: checkpointImage } });
      const err = await cri.runtime('startContainer', { containerId: id }).catch((e: unknown) => e);
      expect(isCriError(err) && err.details).toMatch(expected);
      // Nothing was created for it: not running, no task, no runc state, no mounts of its bundle.
      expect(await cri.containerState(id)).not.toBe(ContainerState.CONTAINER_RUNNING);
      const tasks = await c.ctr(['tasks', 'ls', '-q'], { namespace: CRI_NAMESPACE });
      expect(tasks.stdout.split('\n')).not.toContain(id);
      expect(fs.existsSync(path.join(c.dir, 'runc', handler, CRI_NAMESPACE, id))).toBe(false);
      expect(mountsUnder(c.bundleDir(id, CRI_NAMESPACE))).toEqual([]);
      const footprint = await podFootprint(c, cri, target.id, [], path.join(c.dir, 'runc', handler));
      await cri.removePod(target.id);
      expect(await podLeftovers(c, footprint)).toEqual([]);
    };

    test('pod rules: a private-pid checkpoint is refused in a pod that shares its pid namespace, and the reverse', async () => {
      await refusal(archive, NamespaceMode.POD, /restore refused: the checkpoint's pid namespace is private, the target's is shared/);
      await refusal(archive, NamespaceMode.POD, /restore refused: the checkpoint's pid namespace is private \(its first process is pid 1\), the target's is shared/, 'path');

      const shared = await counterPod('sharedpid', handler, NamespaceMode.POD);
      await waitForCount(cri, shared.containerId, 2);
      const sharedArchive = await checkpointThroughCri(cri, shared, checkpoints());
      await cri.removePod(shared.pod.id);
      await refusal(sharedArchive, NamespaceMode.CONTAINER, /restore refused: the checkpoint's pid namespace is shared, the target's is private/);
      await refusal(sharedArchive, NamespaceMode.CONTAINER, /restore refused: the checkpoint's pid namespace is shared \(its first process is pid \d+, not 1\), the target's is private/, 'path');
      expect(await cri.containerState(original.containerId)).toBe(ContainerState.CONTAINER_RUNNING);
    });
  }

  if (!isGoShim(lane)) {
    test('a restore that hangs is bounded: a time limit, then runc and CRIU are killed and their mounts removed', async () => {
      // A criu whose RPC mode (`criu swrk`, what runc drives) never answers, after mounting
      // what a real CRIU hanging in a damaged restore leaves (seen with a truncated pages image
      // and CRIU 4.2.1): a mount in runc's state dir (its criu-root) and one in CRIU's work dir
      // (its cgroup yard). Everything else goes to the real CRIU. Written once the id is known.
      const token = `0.${process.pid}${Date.now() % 100000}`;
      const bin = path.join(c.dir, 'hanging-criu');
      fs.mkdirSync(bin);
      const wrapper = (id: string, h: Containerd) => {
        const stateDir = path.join(h.dir, 'runc', handler, CRI_NAMESPACE, id);
        const workDir = path.join(h.bundleDir(id, CRI_NAMESPACE), 'criu-work');
        return [
          '#!/bin/sh',
          'case "$1" in swrk)',
          `  mkdir -p ${stateDir}/criu-root.test ${workDir}/.criu.cgyard.test`,
          `  mount -t tmpfs ferry-hang-test ${stateDir}/criu-root.test`,
          `  mount -t tmpfs ferry-hang-test ${workDir}/.criu.cgyard.test`,
          `  exec /bin/sleep 3600 ${token} ;;`,
          'esac',
          'exec /usr/sbin/criu "$@"',
          '',
        ].join('\n');
      };
      fs.writeFileSync(path.join(bin, 'criu'), wrapper('none', c), { mode: 0o755 });
      const hang = await startContainerd({
        version: '2.1', cri: true,
        env: { FERRY_RESTORE_TIMEOUT_SECONDS: '6', PATH: [bin, path.join(REPO_ROOT, 'shim'), path.join(CONTAINERD2_DIR, 'usr/bin'), process.env.PATH].join(':') },
      });
      const hangCri = hang.criClient();
      try {
        const checkpointImage = await importCheckpointImage(archive, 'hang', hang);
        const target = await hangCri.runPod({ name: 'hang', runtimeHandler: handler, logDirectory: path.join(hang.dir, 'pod-logs', 'hang') });
        const id = await hangCri.createContainer(target, { metadata: { name: 'counter' }, image: { image: checkpointImage } });
        fs.writeFileSync(path.join(bin, 'criu'), wrapper(id, hang), { mode: 0o755 });
        const t0 = Date.now();
        const err = await hangCri.runtime('startContainer', { containerId: id }, 60000).catch((e: unknown) => e);
        const took = Date.now() - t0;
        expect(isCriError(err) && err.details).toMatch(/OCI runtime restore failed: no result within 6 s; runc and the \d+ processes under it \(CRIU\) were killed/);
        expect(took).toBeGreaterThanOrEqual(6000);
        expect(took).toBeLessThan(45000);
        expect(listProcs().filter((p) => p.argv.includes(token))).toEqual([]);
        const runcState = path.join(hang.dir, 'runc', handler, CRI_NAMESPACE, id);
        expect(mountsUnder(runcState)).toEqual([]);
        expect(mountsUnder(hang.dir).filter((m) => m.fsType === 'tmpfs' && /criu/.test(m.mountPoint))).toEqual([]);
        expect(fs.existsSync(runcState)).toBe(false);
        const footprint = await podFootprint(hang, hangCri, target.id, [], path.join(hang.dir, 'runc', handler));
        await hangCri.runtime('removeContainer', { containerId: id });
        await hangCri.removePod(target.id);
        expect(await podLeftovers(hang, { ...footprint, containerIds: [id], bundles: [...footprint.bundles, hang.bundleDir(id, CRI_NAMESPACE)] })).toEqual([]);
      } finally {
        hangCri.close();
        await hang.stop();
      }
    });
  }

  /** `archive` unpacked, changed by `damage(dir)`, packed again (names as containerd writes them: no ./). */
  async function damagedArchive(name: string, damage: (dir: string) => void): Promise<string> {
    const dir = path.join(c.dir, `damaged-${name}`);
    fs.mkdirSync(dir);
    await run('tar', ['-xf', archive, '-C', dir]);
    damage(dir);
    const out = path.join(checkpoints(), `damaged-${name}.tar`);
    await run('tar', ['-cf', out, '-C', dir, ...fs.readdirSync(dir)]);
    fs.rmSync(dir, { recursive: true });
    return out;
  }

  /** CreateContainer (+ StartContainer when it gets that far) of a checkpoint image in a new pod; returns the CRI error. */
  async function restoreFails(checkpointArchive: string, name: string): Promise<{ err: unknown; step: string; took: number; podId: string; id?: string }> {
    const checkpointImage = await importCheckpointImage(checkpointArchive, name);
    const podName = `${name}-${++pods}`;
    const target = await cri.runPod({ name: podName, runtimeHandler: handler, logDirectory: path.join(c.dir, 'pod-logs', podName) });
    const t0 = Date.now();
    let id: string;
    try {
      id = await cri.createContainer(target, { metadata: { name: 'counter' }, image: { image: checkpointImage } });
    } catch (err) {
      return { err, step: 'CreateContainer', took: Date.now() - t0, podId: target.id };
    }
    const err = await cri.runtime('startContainer', { containerId: id }, 120000).then(() => undefined, (e: unknown) => e);
    return { err, step: 'StartContainer', took: Date.now() - t0, podId: target.id, id };
  }

  if (!isGoShim(lane)) {
    test('a damaged checkpoint never reaches CRIU: truncated pages image through CRI, a clear error at once, nothing left', async () => {
      const truncated = await damagedArchive('pages', (dir) => {
        const images = path.join(dir, 'checkpoint');
        const pages = fs.readdirSync(images).filter((n) => /^pages-\d+\.img$/.test(n)).map((n) => path.join(images, n));
        const biggest = pages.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
        fs.truncateSync(biggest, Math.floor(fs.statSync(biggest).size / 2));
      });
      const r = await restoreFails(truncated, 'truncated');
      expect(r.step).toBe('StartContainer');
      expect(isCriError(r.err) && r.err.details).toMatch(/restore refused: the checkpoint's CRIU images are incomplete or inconsistent: .*pages/);
      expect(r.took).toBeLessThan(30000); // not CRIU's endless "Advanced iov 0 bytes" loop
      expect(criuProcessesUnder(c.dir)).toEqual([]);
      const runcState = path.join(c.dir, 'runc', handler, CRI_NAMESPACE, r.id!);
      expect(fs.existsSync(runcState)).toBe(false);
      expect(mountsUnder(c.dir).filter((m) => m.mountPoint.includes(r.id!) && !m.mountPoint.endsWith('/rootfs'))).toEqual([]);
      const footprint = await podFootprint(c, cri, r.podId, [], path.join(c.dir, 'runc', handler));
      await cri.runtime('removeContainer', { containerId: r.id! });
      await cri.removePod(r.podId);
      expect(await podLeftovers(c, { ...footprint, containerIds: [r.id!], bundles: [...footprint.bundles, c.bundleDir(r.id!, CRI_NAMESPACE)] })).toEqual([]);
      expect(await cri.containerState(original.containerId)).toBe(ContainerState.CONTAINER_RUNNING);
    });
  }

  test('bad input: a checkpoint image whose archive lacks status.dump is refused by containerd at CreateContainer', async () => {
    const noStatus = await damagedArchive('nostatus', (dir) => fs.rmSync(path.join(dir, 'status.dump')));
    const r = await restoreFails(noStatus, 'nostatus');
    expect(r.step).toBe('CreateContainer');
    expect(isCriError(r.err) && r.err.details).toMatch(/status\.dump/);
    expect((await cri.runtime('listContainers', { filter: { podSandboxId: r.podId } })).containers).toEqual([]);
    await cri.removePod(r.podId);
    expect(await cri.containerState(original.containerId)).toBe(ContainerState.CONTAINER_RUNNING);
  });

  test('bad input: a container that is not running, a location whose directory does not exist', async () => {
    const exited = await cri.runPod({ name: `bad-${++pods}`, runtimeHandler: handler, logDirectory: path.join(c.dir, 'pod-logs', `bad-${pods}`) });
    const done = await cri.startContainer(exited, { metadata: { name: 'done' }, image: { image }, command: ['/bin/sh', '-c', 'exit 0'] });
    await cri.waitForState(done, ContainerState.CONTAINER_EXITED);
    const notRunning = await cri.runtime('checkpointContainer', { containerId: done, location: path.join(checkpoints(), 'exited.tar') }).catch((e: unknown) => e);
    expect(isCriError(notRunning) && notRunning.details).toMatch(/only CONTAINER_RUNNING containers can be checkpointed/);
    expect(fs.existsSync(path.join(checkpoints(), 'exited.tar'))).toBe(false);
    await cri.removePod(exited.id);

    const missing = path.join(c.dir, 'no-such-dir', 'x.tar');
    const noDir = await cri.runtime('checkpointContainer', { containerId: original.containerId, location: missing }).catch((e: unknown) => e);
    expect(isCriError(noDir) && noDir.details).toMatch(/no such file or directory/);
    expect(fs.existsSync(path.dirname(missing))).toBe(false);
    // The container it was asked about runs on, unpaused, and can be checkpointed again.
    expect(await cri.containerState(original.containerId)).toBe(ContainerState.CONTAINER_RUNNING);
    const n = await readCounter(cri, original.containerId);
    await waitForCount(cri, original.containerId, n + 2);
    const again = await checkpointThroughCri(cri, original, checkpoints());
    expect(fs.statSync(again).size).toBeGreaterThan(0);
  });
});
