// `ferry restore --import` of the other engines' archives, on containerd 1.7 and 2.1, into
// ferry's shim and into containerd's Go shim:
//  - containerd 2.1's CRI plugin (CheckpointContainer): REAL archives, made by the CRI client of
//    test/helpers/cri-checkpoint.ts in a pod on containerd 2.1 (plain tar, status.dump,
//    container.log, a rootfs-diff.tar that is a gzip OCI layer with whiteouts, the spec joined to
//    the pod's net/ipc/uts namespaces by path). Its base image is pulled by digest into the target
//    containerd with ctr beforehand (ferry finds it there and does not pull).
//  - CRI-O: SYNTHETIC. CRI-O does not run here, so its layout is built from the reference
//    (../shared/checkpoint-formats.md §1.4): a real runc/CRIU dump (Podman's) laid out as CRI-O
//    writes it — spec.dump with io.container.manager=cri-o and the io.kubernetes.cri-o.*
//    annotations (Metadata, Annotations, Labels as JSON, SandboxID, LogPath), a reduced
//    config.dump whose rootfsImageRef is a storage image id (the config digest), bind.mounts,
//    the log under the literal name io.kubernetes.cri-o.LogPath, rootfs-diff.tar plain with
//    deleted.files.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, Containerd } from '../helpers/containerd';
import { makeCriCheckpointArchive, type MadeArchive } from '../helpers/cri-checkpoint';
import { runFerry } from '../helpers/ferry-cli';
import { expectExit, uniqueId } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import { podmanCheckpointExport } from '../helpers/podman';
import { startRegistry, type Registry } from '../helpers/registry';

jest.setTimeout(240000);

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];
const RUNTIMES = ['io.containerd.ferry.v2', 'io.containerd.runc.v2'];

async function readCount(c: Containerd, id: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('x'), id, 'cat', '/tmp/count']);
    expectExit(c, r, 0);
    const n = Number.parseInt(r.stdout.trim(), 10);
    if (Number.isInteger(n)) return n;
    if (attempt >= 10) throw new Error(`bad count ${JSON.stringify(r.stdout)}`);
  }
}

/**
 * The restored counter never shows less than it had counted at the checkpoint and keeps
 * counting. rootfs-diff.tar brings /tmp/count back with the checkpointed value either way, so
 * a process that had started afresh would be seen writing 1 again: sampled every 200 ms for
 * more than its 1 s period, that cannot go unnoticed.
 */
async function continues(c: Containerd, id: string, atLeast: number, periodMs: number): Promise<void> {
  const seen: number[] = [];
  const until = Date.now() + Math.max(2500, 2.5 * periodMs);
  while (Date.now() < until || seen[seen.length - 1]! <= seen[0]!) {
    seen.push(await readCount(c, id));
    if (seen.length > 200) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(Math.min(...seen)).toBeGreaterThanOrEqual(atLeast);
  expect(seen).toEqual([...seen].sort((a, b) => a - b));
  expect(seen[seen.length - 1]!).toBeGreaterThan(seen[0]!);
}

/** Podman's archive laid out the way CRI-O writes one (see the file comment). */
function crioLayout(podmanArchive: string, out: string, configDigest: string): void {
  const dir = `${out}.d`;
  fs.mkdirSync(dir);
  execFileSync('tar', ['-C', dir, '-xf', podmanArchive]);
  const spec = JSON.parse(fs.readFileSync(path.join(dir, 'spec.dump'), 'utf8')) as { annotations: Record<string, string>; mounts: { destination: string; source: string; type: string }[] };
  const logPath = '/var/log/pods/default_counters_uid1/counter/0.log';
  spec.annotations = {
    'io.container.manager': 'cri-o',
    'io.kubernetes.cri-o.Metadata': JSON.stringify({ name: 'counter', attempt: 0 }),
    'io.kubernetes.cri-o.Annotations': JSON.stringify({ 'io.kubernetes.container.hash': 'abc123' }),
    'io.kubernetes.cri-o.Labels': JSON.stringify({ 'io.kubernetes.container.name': 'counter', 'io.kubernetes.pod.name': 'counters' }),
    'io.kubernetes.cri-o.SandboxID': 'f'.repeat(64),
    'io.kubernetes.cri-o.SandboxName': 'k8s_POD_counters_default_uid1_0',
    'io.kubernetes.cri-o.Name': 'k8s_counter_counters_default_uid1_0',
    'io.kubernetes.cri-o.LogPath': logPath,
    'io.kubernetes.cri-o.ImageName': 'docker.io/library/ferry-busybox:latest',
    'io.kubernetes.cri-o.Created': '2026-12-01T20:00:00.000000000Z',
    'io.kubernetes.pod.name': 'counters',
    'io.kubernetes.pod.namespace': 'default',
  };
  fs.writeFileSync(path.join(dir, 'spec.dump'), JSON.stringify(spec));
  fs.writeFileSync(path.join(dir, 'config.dump'), JSON.stringify({
    id: 'c'.repeat(64), name: 'k8s_counter_counters_default_uid1_0', rootfsImage: 'docker.io/library/ferry-busybox:latest',
    rootfsImageRef: configDigest.replace(/^sha256:/, ''), rootfsImageName: 'docker.io/library/ferry-busybox:latest',
    runtime: 'runc', createdTime: '2026-12-01T20:00:00Z', checkpointedTime: '2026-12-01T20:00:03Z', restoredTime: '0001-01-01T00:00:00Z', restored: false,
  }));
  // bind.mounts: every bind mount but the engine's own (/dev/shm, /run/.containerenv, ...).
  const skip = ['/dev', '/dev/shm', '/proc', '/run', '/run/.containerenv', '/run/secrets', '/sys'];
  fs.writeFileSync(path.join(dir, 'bind.mounts'), JSON.stringify(spec.mounts.filter((m) => m.type === 'bind' && !skip.includes(m.destination))
    .map((m) => ({ source: m.source, destination: m.destination, file_type: 'file', permissions: 0o644 }))));
  fs.writeFileSync(path.join(dir, 'io.kubernetes.cri-o.LogPath'), '2026-12-01T20:00:01Z stdout F hello\n');
  for (const podmanOnly of ['network.status', 'devshm-checkpoint.tar', 'ctr.log', 'artifacts']) fs.rmSync(path.join(dir, podmanOnly), { recursive: true, force: true });
  // CRI-O tars the container dir with IncludeSourceDir: names start with ./
  execFileSync('tar', ['-C', dir, '-cf', out, '.']);
  fs.rmSync(dir, { recursive: true, force: true });
}

describe('ferry restore --import of containerd CRI and CRI-O archives', () => {
  let work: string;
  let registry: Registry;
  let cri: MadeArchive;
  let crio: string;
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-engines-'));
    registry = await startRegistry({ tls: false });
    cri = await makeCriCheckpointArchive(path.join(work, 'cri.tar'), { registry });
    const podman = path.join(work, 'podman.tar');
    await podmanCheckpointExport(uniqueId('ferry-crio'), 'i=0; rm /etc/group; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done', podman, { compress: 'none', settleMs: 2500 });
    crio = path.join(work, 'crio.tar');
    const { buildTestImage } = await import('../helpers/image');
    crioLayout(podman, crio, buildTestImage().configDigest);
  }, 240000);
  afterAll(async () => {
    await registry?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  describe.each(versions)('on containerd %s', (version) => {
    let c: Containerd;
    let stateDir: string;
    const env = () => ({ FERRY_STATE_DIR: stateDir });
    beforeAll(async () => {
      stateDir = path.join(work, `state-${version}`);
      c = await startContainerd({ version });
      // The base image, by the digest the archive names (ctr speaks plain HTTP to it).
      const pull = await c.ctr(['image', 'pull', '--plain-http', cri.rootfsImageRef], { timeoutMs: 60000 });
      expectExit(c, pull, 0);
    }, 120000);
    afterAll(async () => {
      await c?.stop();
    }, 120000);

    test.each(RUNTIMES)('a real containerd 2.1 CRI archive restores into %s: standalone, its counter continues', async (runtime) => {
      const id = uniqueId('cri');
      const imagesBefore = (await c.ctr(['image', 'ls', '-q'])).stdout;
      const r = await runFerry(c, ['--json', 'restore', '--import', cri.archive, '--name', id, '--runtime', runtime], { env: env() });
      if (r.code !== 0) throw new Error(`restore failed: ${r.stderr}\n${c.logTail(30)}`);
      try {
        expect(JSON.parse(r.stdout)).toMatchObject({ id, engine: 'containerd', checkpointName: 'counter', image: cri.rootfsImageRef, imagePulled: false, runtime });
        expect(r.stderr).toMatch(/warning: the checkpoint was taken inside a pod \(io\.kubernetes\.cri\.sandbox-id=/);
        expect((await c.ctr(['image', 'ls', '-q'])).stdout).toBe(imagesBefore);
        await continues(c, id, cri.countAtCheckpoint, 1000);
        // The spec names the new container, not the pod.
        const info = JSON.parse((await c.ctr(['container', 'info', id])).stdout) as { Spec: { annotations: Record<string, string>; linux: { cgroupsPath: string } } };
        expect(info.Spec.annotations['io.kubernetes.cri.container-name']).toBe(id);
        expect(info.Spec.annotations['io.kubernetes.cri.sandbox-id']).toBeUndefined();
        expect(info.Spec.linux.cgroupsPath).toBe(`/${c.namespace}/${id}`);
      } finally {
        await runFerry(c, ['rm', id], { env: env() });
      }
    });

    test.each(RUNTIMES)('a synthetic CRI-O archive restores into %s: base image by storage id, deleted.files applied', async (runtime) => {
      const id = uniqueId('crio');
      const r = await runFerry(c, ['--json', 'restore', '--import', crio, '--name', id, '--runtime', runtime], { env: env() });
      if (r.code !== 0) throw new Error(`restore failed: ${r.stderr}\n${c.logTail(30)}`);
      try {
        expect(JSON.parse(r.stdout)).toMatchObject({ id, engine: 'CRI-O', checkpointName: 'counter', image: c.image!.name, imagePulled: false, rootfs: { deleted: 1 } });
        await continues(c, id, 10, 100);
        expect((await c.ctr(['task', 'exec', '--exec-id', uniqueId('x'), id, 'test', '-e', '/etc/group'])).code).toBe(1);
      } finally {
        await runFerry(c, ['rm', id], { env: env() });
      }
    });
  });
});
