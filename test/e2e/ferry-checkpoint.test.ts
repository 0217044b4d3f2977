// Issue 7, export half: `ferry checkpoint` against containerd 1.7 and 2.1, with ferry's shim and
// containerd's Go shim as the container's runtime. Archives are read back with GNU tar and
// checkpointctl (not with ferry's own reader); the image is pushed to a real registry (Debian's
// docker-registry over TLS on loopback) and pulled into a second containerd with its own root and
// state (another host). Every refusal is checked to have changed nothing: same content, snapshots,
// leases and images, the container still running, no file left.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IPty } from 'node-pty';
import { Connection } from '../../src/ferry/containerd/connection';
import { pullImage, type TransferProgress } from '../../src/ferry/containerd/transfer';
import { collect, Containerd, startContainerd } from '../helpers/containerd';
import { storeState } from '../helpers/containerd-state';
import { FERRY_CLI, runFerry } from '../helpers/ferry-cli';
import { taskRow, uniqueId, waitForStatus } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import { Registry, startRegistry } from '../helpers/registry';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const pty = require('node-pty') as typeof import('node-pty');

jest.setTimeout(180000);

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];
const RUNTIMES = ['io.containerd.ferry.v2', 'io.containerd.runc.v2'];
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** A container that changes its writable layer, then counts (to its log and /tmp/count). */
const COUNTER = 'rm /etc/passwd; echo hello > /tmp/new; mkdir /tmp/dir; i=0; while :; do i=$((i+1)); echo tick $i; echo $i > /tmp/count; sleep 1; done';

interface Env {
  c: Containerd;
  /** TMPDIR for ferry: its staging directories must be gone afterwards. */
  tmp: string;
  /** Where archives go. */
  out: string;
}

function ferryEnv(e: Env): Record<string, string> {
  return { TMPDIR: e.tmp };
}

/** The counter's current value, read inside the container. */
async function count(e: Env, id: string): Promise<number> {
  const r = await e.c.ctr(['task', 'exec', '--exec-id', `count-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`, id, 'cat', '/tmp/count']);
  return Number(r.stdout.trim() || 0);
}

/**
 * Starts the counter with a file:// log URI. Both shims give the container pipes and copy them
 * into the file, so CRIU can dump it and the archive has the log as container.log.
 */
async function startCounter(e: Env, runtime: string, id: string): Promise<string> {
  const log = path.join(e.out, `${id}.log`);
  const r = await e.c.ctr(['run', '-d', '--runtime', runtime, '--log-uri', `file://${log}`, e.c.image!.name, id, 'sh', '-c', COUNTER]);
  if (r.code !== 0) throw new Error(`ctr run failed: ${r.stderr}`);
  await waitFor(async () => ((await count(e, id)) >= 2 ? true : undefined), 20000, 200);
  return log;
}

async function removeContainer(e: Env, id: string): Promise<void> {
  if (await taskRow(e.c, id)) {
    await e.c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    await waitForStatus(e.c, id, 'STOPPED').catch(() => undefined);
    await e.c.ctr(['task', 'rm', '-f', id]);
  }
  await e.c.ctr(['containers', 'rm', id]);
}

/** The digest of the image's target, as containerd lists it. */
async function imageDigest(c: Containerd, name: string): Promise<string> {
  const r = await c.ctr(['images', 'ls']);
  const row = r.stdout.split('\n').find((l) => l.startsWith(`${name} `));
  const digest = row?.split(/\s+/).find((f) => f.startsWith('sha256:'));
  if (!digest) throw new Error(`image ${name} not listed:\n${r.stdout}`);
  return digest;
}

function tarFlag(file: string): string[] {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (head.equals(ZSTD_MAGIC)) return ['--zstd'];
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return ['-z'];
  return [];
}

function extract(file: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('tar', [...tarFlag(file), '-xpf', file, '-C', dir]);
}

const json = <T = Record<string, unknown>>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
const oneLine = (s: string) => s.trimEnd().split('\n').length === 1;

function cgroupVersion(): string {
  return fs.statfsSync('/sys/fs/cgroup').type === 0x63677270 ? 'v2' : 'v1';
}

describe.each(versions)('ferry checkpoint against containerd %s', (version) => {
  let reg: Registry;
  const e = {} as Env;
  beforeAll(async () => {
    reg = await startRegistry();
    e.c = await startContainerd({ version, env: reg.containerdEnv() });
    e.tmp = path.join(e.c.dir, 'ferry-tmp');
    e.out = path.join(e.c.dir, 'out');
    fs.mkdirSync(e.tmp);
    fs.mkdirSync(e.out);
  }, 180000);
  afterAll(async () => {
    await e.c?.stop();
    await reg?.stop();
  }, 120000);
  afterEach(() => {
    // ferry's staging directories never outlive a command.
    expect(fs.readdirSync(e.tmp)).toEqual([]);
  });

  test.each(RUNTIMES)('--export (zstd) of a %s container: Kubernetes layout, metadata, checkpointctl reads it, container stopped after, nothing left behind', async (runtime) => {
    const id = uniqueId('exp');
    const log = await startCounter(e, runtime, id);
    const before = await storeState(e.c);
    const file = path.join(e.out, `${id}.tar.zst`);
    const r = await runFerry(e.c, ['--json', 'checkpoint', id, '--export', file, '--print-stats'], { env: ferryEnv(e) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ id, name: id, stopped: true, leftRunning: false, export: { path: file, compression: 'zstd' } });
    expect(result.export.size).toBe(fs.statSync(file).size);
    expect(result.rootfsDiff.deletedFiles).toEqual(['/etc/passwd']);
    expect(result.statistics.pages_written).toBeGreaterThan(0);
    expect(result.statistics.pages_scanned).toBeGreaterThanOrEqual(result.statistics.pages_written);
    expect(result.statistics.freezing_time).toBeGreaterThan(0);

    // The archive: 0600, zstd, the Kubernetes layout.
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(tarFlag(file)).toEqual(['--zstd']);
    expect(fs.readdirSync(e.out).filter((n) => n.startsWith(`.${id}`))).toEqual([]);
    const names = execFileSync('tar', ['--zstd', '-tf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(names.slice(0, 4)).toEqual(['config.dump', 'spec.dump', 'status.dump', 'checkpoint/']);
    for (const n of ['checkpoint/inventory.img', 'checkpoint/pstree.img', 'checkpoint/descriptors.json', 'rootfs-diff.tar', 'deleted.files', 'dump.log', 'stats-dump']) {
      expect(names).toContain(n);
    }
    expect(names).toContain('container.log');
    expect(names.some((n) => /^checkpoint\/pages-\d+\.img$/.test(n))).toBe(true);
    const dir = path.join(e.out, `${id}-x`);
    extract(file, dir);

    const config = json(path.join(dir, 'config.dump'));
    const digest = await imageDigest(e.c, e.c.image!.name);
    expect(config).toMatchObject({
      id, name: id, rootfsImage: e.c.image!.name, rootfsImageName: e.c.image!.name,
      rootfsImageRef: `docker.io/library/ferry-busybox@${digest}`, runtime, restored: false, restoredTime: '0001-01-01T00:00:00Z',
    });
    expect(config.createdTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Date.parse(config.checkpointedTime as string)).toBeGreaterThan(Date.parse(config.createdTime as string));
    const spec = json<{ annotations: Record<string, string>; process: { args: string[] } }>(path.join(dir, 'spec.dump'));
    expect(spec.annotations['io.kubernetes.cri.container-name']).toBe(id);
    expect(spec.process.args).toEqual(['sh', '-c', COUNTER]);
    const status = json(path.join(dir, 'status.dump'));
    expect(status).toMatchObject({ id, metadata: { name: id }, state: 1, image: { image: e.c.image!.name }, image_ref: config.rootfsImageRef });
    expect(json(path.join(dir, 'deleted.files'))).toEqual(['/etc/passwd']);
    const diff = execFileSync('tar', ['-tf', path.join(dir, 'rootfs-diff.tar')], { encoding: 'utf8' }).trim().split('\n');
    expect(diff).toEqual(expect.arrayContaining(['tmp/new', 'tmp/dir/', 'tmp/count']));
    expect(diff.filter((n) => n.includes('.wh.'))).toEqual([]);
    expect(execFileSync('tar', ['-xOf', path.join(dir, 'rootfs-diff.tar'), 'tmp/new'], { encoding: 'utf8' })).toBe('hello\n');
    // The log as it was when the task was paused: it begins with the first ticks and is a
    // prefix of the file (the task never ran again, and the pipes were drained at its exit).
    const archivedLog = fs.readFileSync(path.join(dir, 'container.log'), 'utf8');
    expect(archivedLog).toMatch(/^tick 1\ntick 2\n/);
    expect(fs.readFileSync(log, 'utf8').startsWith(archivedLog)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'dump.log'), 'utf8')).toMatch(/Dumping finished successfully/);
    expect(fs.statSync(path.join(dir, 'checkpoint')).mode & 0o777).toBe(0o700);

    // checkpointctl 1.3 reads it and names the container, the image and the runtime.
    const show = execFileSync('checkpointctl', ['show', file], { encoding: 'utf8' });
    expect(show).toContain(id);
    expect(show).toContain(e.c.image!.name);
    expect(show).toContain(runtime);
    const inspected = JSON.parse(execFileSync('checkpointctl', ['inspect', '--format', 'json', file], { encoding: 'utf8' }))[0];
    expect(inspected).toMatchObject({ container_name: id, image: e.c.image!.name, runtime, engine: 'containerd', id });
    const stats = JSON.parse(execFileSync('checkpointctl', ['inspect', '--stats', '--format', 'json', file], { encoding: 'utf8' }))[0].statistics;
    expect(stats).toMatchObject({ pages_written: result.statistics.pages_written, freezing_time: result.statistics.freezing_time });

    // Stopped only now: no task, the container record stays. Nothing else changed in containerd.
    expect(await taskRow(e.c, id)).toBeUndefined();
    const after = await storeState(e.c);
    expect(after).toEqual({ ...before, tasks: before.tasks.filter((t) => t !== id) });
    expect(after.containers).toContain(id);
    await removeContainer(e, id);
  });

  test.each(RUNTIMES)('--leave-running of a %s container: plain tar (--compress none) and gzip, the container counts on', async (runtime) => {
    const id = uniqueId('run');
    await startCounter(e, runtime, id);
    try {
      const plain = path.join(e.out, `${id}.tar`);
      const r = await runFerry(e.c, ['checkpoint', '--leave-running', '--compress', 'none', '--export', plain, id], { env: ferryEnv(e) });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`exported ${id} to ${plain} (none, ${r.stdout.match(/none, ([^)]+)\)/)![1]})\ncontainer ${id} left running\n`);
      expect(tarFlag(plain)).toEqual([]);
      expect(fs.readFileSync(plain).toString('latin1', 257, 262)).toBe('ustar');
      expect(execFileSync('tar', ['-tf', plain], { encoding: 'utf8' })).toMatch(/^config\.dump\n/);
      expect((await taskRow(e.c, id))?.status).toBe('RUNNING');
      const at = await count(e, id);
      expect(await waitFor(async () => ((await count(e, id)) >= at + 2 ? true : undefined), 20000, 300)).toBe(true);

      const gz = path.join(e.out, `${id}.tar.gz`);
      const g = await runFerry(e.c, ['--json', 'checkpoint', '-R', '-c', 'gzip', '-e', gz, id], { env: ferryEnv(e) });
      expect(g.code).toBe(0);
      expect(JSON.parse(g.stdout)).toMatchObject({ leftRunning: true, stopped: false, export: { compression: 'gzip' } });
      expect(tarFlag(gz)).toEqual(['-z']);
      expect(execFileSync('tar', ['-tzf', gz], { encoding: 'utf8' })).toContain('checkpoint/pstree.img');
      expect(JSON.parse(execFileSync('checkpointctl', ['inspect', '--format', 'json', gz], { encoding: 'utf8' }))[0]).toMatchObject({ container_name: id, runtime });
      expect((await taskRow(e.c, id))?.status).toBe('RUNNING');
    } finally {
      await removeContainer(e, id);
    }
  });

  test.each(RUNTIMES)('--tcp-established reaches CRIU through %s: refused without it (container unchanged), dumped with it, the connection carries on', async (runtime) => {
    const id = uniqueId('tcp');
    const port = 20000 + Math.floor(Math.random() * 20000);
    // Host network: ctr gives a new network namespace no running loopback. Both ends are in the container.
    const script = `(while :; do sleep 1; done) | nc -l -p ${port} > /tmp/got & sleep 1; (while :; do echo ping; sleep 1; done) | nc 127.0.0.1 ${port} & echo ready > /tmp/ready; while :; do sleep 1; done`;
    expect((await e.c.ctr(['run', '-d', '--net-host', '--runtime', runtime, e.c.image!.name, id, 'sh', '-c', script])).code).toBe(0);
    const lines = async () => Number((await e.c.ctr(['task', 'exec', '--exec-id', `l-${Date.now()}`, id, 'sh', '-c', 'wc -l < /tmp/got'])).stdout.trim() || 0);
    try {
      expect(await waitFor(async () => ((await lines()) >= 2 ? true : undefined), 20000, 300)).toBe(true);
      const before = await storeState(e.c);
      const refusedRun = await runFerry(e.c, ['checkpoint', id, '--export', path.join(e.out, `${id}-0.tar`)], { env: ferryEnv(e) });
      expect(refusedRun.code).toBe(1);
      expect(refusedRun.stderr).toBe(`ferry checkpoint: CRIU could not dump container "${id}": inet: Connected TCP socket, consider using --tcp-established option; the container was left as it was\n`);
      expect(await storeState(e.c)).toEqual(before);
      expect(fs.existsSync(path.join(e.out, `${id}-0.tar`))).toBe(false);
      expect((await taskRow(e.c, id))?.status).toBe('RUNNING');

      const file = path.join(e.out, `${id}.tar`);
      const ok = await runFerry(e.c, ['checkpoint', id, '--leave-running', '--tcp-established', '--compress', 'none', '--export', file], { env: ferryEnv(e) });
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      const sockets = JSON.stringify(JSON.parse(execFileSync('checkpointctl', ['inspect', '--sockets', '--format', 'json', file], { encoding: 'utf8' }))[0].sockets);
      expect(sockets).toMatch(/ESTABLISHED/);
      expect(sockets).toContain(String(port));
      const at = await lines();
      expect(await waitFor(async () => ((await lines()) >= at + 2 ? true : undefined), 20000, 300)).toBe(true);
    } finally {
      await removeContainer(e, id);
    }
  });

  test('a paused container is checkpointed as it is and stays paused with --leave-running', async () => {
    const id = uniqueId('paused');
    await startCounter(e, RUNTIMES[1]!, id);
    try {
      expect((await e.c.ctr(['task', 'pause', id])).code).toBe(0);
      await waitForStatus(e.c, id, 'PAUSED');
      const r = await runFerry(e.c, ['checkpoint', id, '-R', '--export', path.join(e.out, `${id}.tar.zst`)], { env: ferryEnv(e) });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect((await taskRow(e.c, id))?.status).toBe('PAUSED');
      expect(JSON.parse(execFileSync('checkpointctl', ['inspect', '--format', 'json', path.join(e.out, `${id}.tar.zst`)], { encoding: 'utf8' }))[0].container_name).toBe(id);
      expect((await e.c.ctr(['task', 'resume', id])).code).toBe(0);
    } finally {
      await removeContainer(e, id);
    }
  });

  test('--create-image --push: a standard single-layer OCI image with every engine\'s annotations; a second containerd pulls it complete', async () => {
    const runtime = version === '1.7' ? RUNTIMES[0]! : RUNTIMES[1]!;
    const id = uniqueId('img');
    await startCounter(e, runtime, id);
    const ref = `${reg.host}/ferry-e2e/${id}:v1`;
    const r = await runFerry(e.c, ['--json', 'checkpoint', id, '--create-image', ref, '--push'], { env: ferryEnv(e) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ image: { name: ref, pushed: true }, stopped: true });
    expect(result.export).toBeUndefined();

    // The image in containerd: its target is an OCI manifest with standard media types only.
    const digest = await imageDigest(e.c, ref);
    expect(digest).toBe(result.image.manifest.digest);
    const manifestBytes = execFileSync(e.c.ctrPath, ['-a', e.c.address, '-n', e.c.namespace, 'content', 'get', digest]);
    const manifest = JSON.parse(manifestBytes.toString());
    expect(manifest).toMatchObject({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json' },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }],
    });
    const a = manifest.annotations as Record<string, string>;
    expect(a).toMatchObject({
      'org.criu.checkpoint.container.name': id,
      'io.kubernetes.cri-o.annotations.checkpoint.name': id,
      'io.podman.annotations.checkpoint.name': id,
      'io.podman.annotations.checkpoint.runtime.name': runtime,
      'org.criu.checkpoint.engine.name': 'ferry',
      'org.criu.checkpoint.rootfsImageName': e.c.image!.name,
      'io.podman.annotations.checkpoint.rootfsImageName': e.c.image!.name,
      'org.criu.checkpoint.rootfsImageID': `docker.io/library/ferry-busybox@${await imageDigest(e.c, e.c.image!.name)}`,
      'io.podman.annotations.checkpoint.host.kernel': os.release(),
      'org.criu.checkpoint.host.kernel': os.release(),
      'io.podman.annotations.checkpoint.host.arch': process.arch === 'x64' ? 'amd64' : process.arch,
      'io.podman.annotations.checkpoint.cgroups.version': cgroupVersion(),
      'org.criu.checkpoint.cgroup.version': cgroupVersion(),
    });
    const criu = execFileSync('criu', ['--version'], { encoding: 'utf8' }).match(/Version: (\S+)/)![1];
    expect(a['io.podman.annotations.checkpoint.criu.version']).toBe(criu);
    expect(a['io.podman.annotations.checkpoint.runtime.version']).toBe(execFileSync('runc', ['--version'], { encoding: 'utf8' }).match(/version (\S+)/)![1]);
    expect(a['io.ferry.checkpoint.ferry.version']).toMatch(/^\d+\.\d+\.\d+/);
    expect(a['io.ferry.checkpoint.containerd.version']).toMatch(new RegExp(`^v?${version.replace('.', '\\.')}`));
    const config = JSON.parse(execFileSync(e.c.ctrPath, ['-a', e.c.address, '-n', e.c.namespace, 'content', 'get', manifest.config.digest]).toString());
    expect(config).toMatchObject({ os: 'linux', rootfs: { type: 'layers', diff_ids: [result.image.layer.diffId] } });

    // Unpacked locally, as a pulled image would be (CRI's restore mounts the image's snapshot).
    expect((await e.c.ctr(['images', 'check', `name==${ref}`])).stdout).toMatch(/complete \(2\/2\) .* true\s*$/);
    expect((await e.c.ctr(['snapshots', 'ls'])).stdout).toContain(result.image.layer.diffId);

    // The registry has the same manifest, byte for byte.
    const got = await reg.get(`ferry-e2e/${id}/manifests/v1`, { Accept: 'application/vnd.oci.image.manifest.v1+json' });
    expect(got.status).toBe(200);
    expect(`sha256:${createHash('sha256').update(got.body).digest('hex')}`).toBe(digest);

    // Another host: a second containerd (own root and state) pulls it through ferry's pull. 1.7
    // reads no hosts config: it pulls the pushed name. 2.1 is sent a hosts.toml directory that
    // maps a name no DNS knows to the registry (with its CA): the pull works only through it.
    const c2 = await startContainerd({ version, env: reg.containerdEnv(), importImage: false });
    let pulledRef = ref;
    try {
      const conn = new Connection(c2.address, c2.namespace);
      const seen: TransferProgress[] = [];
      try {
        let hostDir: string | undefined;
        if (version === '2.1') {
          const alias = `ferry-registry.invalid:${reg.host.split(':')[1]}`;
          hostDir = path.join(e.out, `${id}-certs.d`);
          fs.mkdirSync(path.join(hostDir, alias), { recursive: true });
          fs.writeFileSync(path.join(hostDir, alias, 'hosts.toml'), `server = "https://${reg.host}"\n\n[host."https://${reg.host}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${reg.caFile}"\n`);
          pulledRef = ref.replace(reg.host, alias);
          await expect(pullImage(conn, pulledRef)).rejects.toMatchObject({ details: expect.stringMatching(/ferry-registry\.invalid/) });
        }
        await pullImage(conn, pulledRef, { onProgress: (p) => seen.push(p), hostDir });
      } finally {
        conn.close();
      }
      const check = await c2.ctr(['images', 'check', `name==${pulledRef}`]);
      expect(check.stdout).toMatch(/complete \(2\/2\)/); // config + layer
      expect(await imageDigest(c2, pulledRef)).toBe(digest);
      expect(seen.length).toBeGreaterThan(0);
      expect(seen[seen.length - 1]!.total).toBeGreaterThanOrEqual(result.image.layer.size);
      // The pulled layer holds the archive's files at its root.
      const layer = execFileSync(c2.ctrPath, ['-a', c2.address, '-n', c2.namespace, 'content', 'get', result.image.layer.digest], { maxBuffer: 1 << 28 });
      const layerFile = path.join(e.out, `${id}.layer`);
      fs.writeFileSync(layerFile, layer);
      const files = execFileSync('tar', ['--zstd', '-tf', layerFile], { encoding: 'utf8' }).trim().split('\n');
      expect(files).toEqual(expect.arrayContaining(['config.dump', 'spec.dump', 'status.dump', 'checkpoint/', 'checkpoint/pstree.img', 'rootfs-diff.tar', 'dump.log', 'stats-dump']));
      // Unpacked on pull: a committed snapshot whose name is the layer's diff id (single layer: chain id = diff id).
      const snaps = await c2.ctr(['snapshots', 'ls']);
      expect(snaps.stdout).toContain(result.image.layer.diffId);
    } finally {
      await c2.stop();
    }
    await removeContainer(e, id);
    await e.c.ctr(['images', 'rm', '--sync', ref]);
    // Removing the image removes its snapshot and blobs too (they hang off it by gc labels).
    expect((await e.c.ctr(['snapshots', 'ls'])).stdout).not.toContain(result.image.layer.diffId);
    expect((await e.c.ctr(['content', 'ls', '-q'])).stdout).not.toContain(result.image.layer.digest);
  });

  // Through a pipe nothing is drawn: every other test here asserts an empty stderr.
  test('progress: a bar with bytes, rate and time left on a terminal, for the export and the push', async () => {
    const id = uniqueId('big');
    // ~64 MiB of random text in the shell's memory, so the export takes a while.
    const r = await e.c.ctr(['run', '-d', '--runtime', RUNTIMES[0]!, e.c.image!.name, id, 'sh', '-c',
      'x=$(head -c 50331648 /dev/urandom | base64); echo ready > /tmp/ready; while :; do sleep 1; done']);
    expect(r.code).toBe(0);
    const ready = await waitFor(async () => ((await e.c.ctr(['task', 'exec', '--exec-id', `ready-${Date.now()}`, id, 'cat', '/tmp/ready'])).stdout.includes('ready') ? true : undefined), 60000, 500);
    expect(ready).toBe(true);
    const file = path.join(e.out, `${id}.tar.zst`);
    const ref = `${reg.host}/ferry-e2e/${id}:v1`;
    const term: IPty = pty.spawn(process.execPath, [FERRY_CLI, '-a', e.c.address, '-n', e.c.namespace, 'checkpoint', id, '--export', file, '--create-image', ref, '--push'], {
      cols: 120, rows: 24, name: 'xterm', env: { ...process.env, ...ferryEnv(e), TERM: 'xterm' } as Record<string, string>,
    });
    let out = '';
    term.onData((d) => { out += d; });
    const exit = await new Promise<{ exitCode: number }>((resolve) => term.onExit(resolve));
    expect({ exitCode: exit.exitCode, out }).toEqual({ exitCode: 0, out: expect.any(String) });
    expect(out).toMatch(/export \[[=-]{24}\] +\d+% [\d.]+ [KM]iB\/[\d.]+ MiB [\d.]+ [KM]iB\/s \S+ left/);
    expect(out).toMatch(/push /);
    expect(out).toContain(`exported ${id} to ${file}`);
    expect(out).toContain(`pushed ${ref}`);
    expect(fs.statSync(file).size).toBeGreaterThan(30 * 1024 * 1024);
    await removeContainer(e, id);
    await e.c.ctr(['images', 'rm', '--sync', ref]);
  });

  test('Ctrl-C while the archive is written: the checkpoint is undone, the container runs on', async () => {
    const id = uniqueId('int');
    expect((await e.c.ctr(['run', '-d', '--runtime', RUNTIMES[0]!, e.c.image!.name, id, 'sh', '-c',
      'x=$(head -c 50331648 /dev/urandom | base64); echo ready > /tmp/ready; i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 1; done'])).code).toBe(0);
    try {
      expect(await waitFor(async () => ((await e.c.ctr(['task', 'exec', '--exec-id', `r-${Date.now()}`, id, 'cat', '/tmp/ready'])).stdout.includes('ready') ? true : undefined), 60000, 500)).toBe(true);
      const before = await storeState(e.c);
      const file = path.join(e.out, `${id}.tar.gz`);
      // gzip makes the archive phase last seconds: SIGINT arrives while the temporary file grows.
      const child = spawn(process.execPath, [FERRY_CLI, '-a', e.c.address, '-n', e.c.namespace, 'checkpoint', id, '--compress', 'gzip', '--export', file], { env: { ...process.env, ...ferryEnv(e) }, stdio: ['ignore', 'pipe', 'pipe'] });
      const done = collect(child, { timeoutMs: 120000 });
      const temp = await waitFor(() => fs.readdirSync(e.out).find((n) => n.startsWith(`.${id}.tar.gz.ferry-`)), 60000, 10);
      expect(temp).toBeDefined();
      child.kill('SIGINT');
      const r = await done;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^ferry checkpoint: interrupted; undoing the checkpoint/);
      expect(r.stderr).toMatch(/\nferry checkpoint: interrupted: nothing of the checkpoint was kept and the container was left as it was\n$/);
      expect(fs.readdirSync(e.out).filter((n) => n.includes(id))).toEqual([]);
      expect(fs.readdirSync(e.tmp)).toEqual([]);
      expect(await storeState(e.c)).toEqual(before);
      expect((await taskRow(e.c, id))?.status).toBe('RUNNING');
      const at = await count(e, id);
      expect(await waitFor(async () => ((await count(e, id)) > at ? true : undefined), 10000, 300)).toBe(true);
    } finally {
      await removeContainer(e, id);
    }
  });

  describe('refusals: one clear line, exit status 1, nothing changed', () => {
    let id: string;
    beforeAll(async () => {
      id = uniqueId('ref');
      await startCounter(e, RUNTIMES[0]!, id);
    });
    afterAll(async () => {
      await removeContainer(e, id);
    });

    async function refused(args: string[], message: RegExp): Promise<void> {
      const before = await storeState(e.c);
      const outBefore = fs.readdirSync(e.out).sort();
      const r = await runFerry(e.c, args, { env: ferryEnv(e) });
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
      expect(oneLine(r.stderr)).toBe(true);
      expect(r.stderr).toMatch(message);
      expect(await storeState(e.c)).toEqual(before);
      expect(fs.readdirSync(e.out).sort()).toEqual(outBefore);
      expect((await taskRow(e.c, id))?.status).toBe('RUNNING');
    }

    test('unknown container, container without a task, stopped task', async () => {
      await refused(['checkpoint', 'no-such-container', '--export', path.join(e.out, 'x.tar')], /^ferry checkpoint: no container "no-such-container" in namespace "[^"]+"$/m);
      const created = uniqueId('created');
      expect((await e.c.ctr(['containers', 'create', e.c.image!.name, created, 'true'])).code).toBe(0);
      await refused(['checkpoint', created, '--export', path.join(e.out, 'x.tar')], new RegExp(`^ferry checkpoint: container "${created}" is not running \\(it has no task\\)$`, 'm'));
      await e.c.ctr(['containers', 'rm', created]);
      const exited = uniqueId('exited');
      expect((await e.c.ctr(['run', '-d', '--runtime', RUNTIMES[0]!, e.c.image!.name, exited, 'true'])).code).toBe(0);
      await waitForStatus(e.c, exited, 'STOPPED');
      await refused(['checkpoint', exited, '--export', path.join(e.out, 'x.tar')], new RegExp(`^ferry checkpoint: container "${exited}" is not running \\(its task is stopped\\)$`, 'm'));
      await e.c.ctr(['task', 'rm', exited]);
      await e.c.ctr(['containers', 'rm', exited]);
    });

    test('bad flags: --compress, nothing to write to, --push alone, a bad image reference', async () => {
      await refused(['checkpoint', id, '--compress', 'bzip2', '--export', path.join(e.out, 'x.tar')], /^ferry: option '-c, --compress <method>' argument 'bzip2' is invalid\. Allowed choices are zstd, gzip, none\.$/m);
      await refused(['checkpoint', id], /^ferry checkpoint: nothing to write the checkpoint to: give --export FILE, --create-image REF, or both$/m);
      await refused(['checkpoint', id, '--push', '--export', path.join(e.out, 'x.tar')], /^ferry checkpoint: --push needs --create-image REF/m);
      await refused(['checkpoint', id, '--create-image', 'Bad Name!'], /^ferry checkpoint: --create-image "Bad Name!" is not an image reference$/m);
      await refused(['checkpoint', id, '--export', path.join(e.out, 'x.tar'), '--plain-http'], /^ferry checkpoint: --hosts-dir and --plain-http only apply to --push$/m);
      if (version === '1.7') {
        await refused(['checkpoint', id, '--create-image', `${reg.host}/x:1`, '--push', '--hosts-dir', e.out], /^ferry checkpoint: containerd v?1\.7\.\d+\S* reads no --hosts-dir or --plain-http in a push/m);
      }
    });

    test('an export path in a missing directory; an existing file (refused without --force, replaced with it)', async () => {
      await refused(['checkpoint', id, '--export', path.join(e.out, 'missing', 'x.tar')], /^ferry checkpoint: cannot write .*missing\/x\.tar: directory .*missing does not exist$/m);
      const existing = path.join(e.out, `${id}-existing.tar`);
      fs.writeFileSync(existing, 'keep me');
      await refused(['checkpoint', id, '--export', existing], /already exists \(use --force to replace it\)$/m);
      expect(fs.readFileSync(existing, 'utf8')).toBe('keep me');
      const r = await runFerry(e.c, ['checkpoint', id, '--leave-running', '--force', '--compress', 'none', '--export', existing], { env: ferryEnv(e) });
      expect(r.code).toBe(0);
      expect(fs.readFileSync(existing).toString('latin1', 0, 11)).toBe('config.dump');
      expect(fs.statSync(existing).mode & 0o777).toBe(0o600);
      fs.unlinkSync(existing);
    });

    test('a push to an unreachable registry: no image, no partial archive, the container runs on (not paused)', async () => {
      const closed = await new Promise<number>((resolve) => {
        const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
      });
      const ref = `127.0.0.1:${closed}/ferry-e2e/unreachable:v1`;
      await refused(['checkpoint', id, '--export', path.join(e.out, 'unreachable.tar.zst'), '--create-image', ref, '--push'], /^ferry checkpoint: .*(connection refused|connect)/m);
      expect((await e.c.ctr(['images', 'ls', '-q'])).stdout).not.toContain(ref);
      // It still counts: not left frozen.
      const at = await count(e, id);
      expect(await waitFor(async () => ((await count(e, id)) > at ? true : undefined), 10000, 300)).toBe(true);
    });
  });
});
