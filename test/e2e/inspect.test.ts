// Issue 8: `ferry inspect` of real checkpoints. A container runs sh with two children — a
// subshell holding /tmp/held open on fd 4, and busybox nc listening on a TCP port — and an
// environment variable set; it is checkpointed through containerd by ferry's shim AND by the Go
// shim (`ctr c checkpoint --task --rw --image`), and the CRIU images are put into a
// Kubernetes-layout archive ASSEMBLED by the test helpers (checkpoint-archive.ts; `ferry
// checkpoint --export` does not exist yet). `ferry inspect` must show the tree, the command
// lines, the variable, the open file and the listening port; checkpointctl 1.3.0 given the same
// archive must agree key by key on everything both show. checkpointctl 1.3 reads a pagemap's
// page count only from compat_nr_pages, which CRIU 4.2 writes as 0, so its command lines and
// environments come out empty: those keys are compared only where checkpointctl has them.
// The same checkpoint is then inspected as images in containerd's store, by name, with the
// same assertions: containerd's own checkpoint image that ctr made, and an OCI checkpoint image
// that buildah makes of the archive (the archive at / of a scratch image, imported with ctr).
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ctrOk } from '../helpers/checkpoint-content';
import { assembleArchive, type AssembledArchive } from '../helpers/checkpoint-archive';
import { ctrRunDetached, expectExit, lanes, taskRow, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import { buildahCheckpointImage } from '../helpers/buildah';
import { runFerry } from '../helpers/ferry-cli';
import { startContainerd, type Containerd } from '../helpers/containerd';
import { startRegistry, type Registry } from '../helpers/registry';
import { Connection } from '../../src/ferry/containerd/connection';
import { pullImage } from '../../src/ferry/containerd/transfer';

jest.setTimeout(240000);
const run = promisify(execFile);
const FERRY = path.resolve(__dirname, '../../shim/ferry');
const GO_SHIM = 'io.containerd.runc.v2';
const VAR = 'FERRY_INSPECT_VAR';
const VALUE = 'forensic-42';

interface Ps { pid: number; command: string; cmdline?: string; task_state?: string; environment_variables?: Record<string, string>; children?: Ps[] }
interface Inspect {
  container_name: string; image: string; id: string; runtime: string; created: string; checkpointed?: string; engine: string;
  checkpoint_size: Record<string, number>; statistics?: Record<string, number>; process_tree?: Ps;
  file_descriptors?: { pid: number; open_files?: { type: string; fd: string; path: string }[] }[];
  sockets?: { pid: number; open_sockets?: { protocol?: string; data: Record<string, unknown> }[] }[];
  mounts?: unknown[];
  checkpoint_image?: { name: string; format: string; digest: string; annotations?: Record<string, string> };
}

const flatten = (p: Ps | undefined): Ps[] => (p ? [p, ...(p.children ?? []).flatMap(flatten)] : []);
/**
 * The tree as both tools show it: pid, command, children (cmdline/env/task_state compared
 * separately). Children are compared by pid: checkpointctl builds them from a Go map, in no fixed order.
 */
const shape = (p: Ps): unknown => ({ pid: p.pid, command: p.command, children: [...(p.children ?? [])].sort((a, b) => a.pid - b.pid).map(shape) });

async function ferryJson(args: string[]): Promise<Inspect> {
  const { stdout } = await run(FERRY, ['inspect', ...args, '--format', 'json'], { maxBuffer: 64 << 20 });
  const arr = JSON.parse(stdout) as Inspect[];
  expect(arr).toHaveLength(1);
  return arr[0];
}

const PORT = 7000 + (process.pid % 1000);
const SCRIPT = `(exec 4>/tmp/held; while :; do sleep 1; done) & nc -l -p ${PORT} & while :; do sleep 1; done`;

/** What every source of these checkpoints must show: the tree, command lines, variable, open file, listening port. */
function expectTheFacts(j: Inspect): void {
  const procs = flatten(j.process_tree);
  const root = j.process_tree!;
  expect(root.command).toBe('sh');
  expect(root.cmdline).toBe(`sh -c ${SCRIPT} `);
  expect(root.environment_variables?.[VAR]).toBe(VALUE);
  const nc = procs.find((p) => p.command === 'nc');
  expect(nc?.cmdline).toBe(`nc -l -p ${PORT} `);
  expect(root.children?.map((p) => p.pid)).toContain(nc!.pid);
  const holder = procs.find((p) => p !== root && p.command === 'sh');
  expect(root.children?.map((p) => p.pid)).toContain(holder!.pid);
  const files = j.file_descriptors!.find((f) => f.pid === holder!.pid)!.open_files!;
  expect(files).toContainEqual({ type: 'REG', fd: 'REG 4', path: '/tmp/held' });
  expect(files).toContainEqual({ type: '', fd: 'root', path: '/' });
  const listen = j.sockets!.find((s) => s.pid === nc!.pid)!.open_sockets!;
  expect(listen).toContainEqual(expect.objectContaining({ protocol: 'TCP', data: expect.objectContaining({ type: 'TCP', state: 'LISTEN', src_port: PORT }) }));
}

/**
 * nc is listening once the container's /proc/net/tcp or tcp6 (busybox nc binds the IPv6 wildcard)
 * has the port in state 0A.
 */
async function waitListening(c: Containerd, id: string): Promise<void> {
  const listening = await waitFor(async () => {
    const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('ss'), id, 'cat', '/proc/net/tcp', '/proc/net/tcp6']);
    return new RegExp(`:${PORT.toString(16).toUpperCase().padStart(4, '0')} 0+:0000 0A `).test(r.stdout) || undefined;
  }, 20000, 200);
  if (!listening) throw new Error(`nc never listened on port ${PORT} in ${id}`);
}

/**
 * checkpointctl 1.3.0 on `file` agrees with ferry's JSON `j` of it, key by key, on everything both
 * show. checkpointctl 1.3 reads a pagemap's page count only from compat_nr_pages, which CRIU 4.2
 * writes as 0: its command lines and environments are compared only where it has them, and
 * ferry must show them where it has not.
 */
async function expectCheckpointctlAgrees(file: string, j: Inspect, hasStats: boolean): Promise<void> {
  // checkpointctl's --all needs stats-dump; without one, the same flags but --stats.
  const ccFlags = hasStats ? ['--all'] : ['--ps-tree', '--ps-tree-cmd', '--ps-tree-env', '--files', '--sockets', '--mounts'];
  const cc = JSON.parse((await run('checkpointctl', ['inspect', '--format', 'json', ...ccFlags, file], { maxBuffer: 64 << 20 })).stdout) as Inspect[];
  expect(cc).toHaveLength(1);
  const k = cc[0];
  for (const key of ['container_name', 'image', 'id', 'runtime', 'created', 'checkpointed', 'engine', 'checkpoint_size', 'statistics', 'file_descriptors', 'sockets', 'mounts'] as const) {
    expect({ key, value: j[key] }).toEqual({ key, value: k[key] });
  }
  expect(shape(j.process_tree!)).toEqual(shape(k.process_tree!));
  const procs = flatten(j.process_tree);
  for (const p of flatten(k.process_tree)) {
    const ours = procs.find((q) => q.pid === p.pid)!;
    // (checkpointctl reads the argument area as zero pages: NULs turned into spaces, a blank line).
    if (p.cmdline !== undefined && p.cmdline.trim() !== '') expect(ours.cmdline).toBe(p.cmdline);
    if (p.environment_variables !== undefined) expect(ours.environment_variables).toEqual(p.environment_variables);
  }
  // ferry shows what checkpointctl 1.3 cannot (its cmdline comes out empty on CRIU 4.2 pagemaps).
  expect(k.process_tree!.cmdline ?? '').toMatch(/^\s*$/);
  expect(k.process_tree!.environment_variables).toBeUndefined();
}

describe.each(lanes())('ferry inspect of real checkpoints [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  // Made in beforeAll: a describe whose tests are all filtered out runs neither hook.
  let tmp = '';
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-inspect-e2e-')); });
  afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });
  const producers = [...new Set([lane.runtime, GO_SHIM])];

  /** `ferry -a -n inspect NAME --all --format json` against this lane's containerd. */
  async function ferryImageJson(name: string): Promise<Inspect> {
    const r = await runFerry(containerd(), ['inspect', name, '--all', '--format', 'json']);
    if (r.code !== 0) throw new Error(`ferry inspect ${name} exited ${r.code}: ${r.stderr}`);
    const arr = JSON.parse(r.stdout) as Inspect[];
    expect(arr).toHaveLength(1);
    return arr[0];
  }

  /**
   * Runs the container, checkpoints it (`ctr c checkpoint --task --rw --image`), assembles the
   * archive, and hands both to `use` while the checkpoint image still exists.
   */
  async function withCheckpoint(runtime: string, compress: 'gzip' | 'zstd' | undefined, use: (archive: AssembledArchive, id: string, ref: string) => Promise<void>): Promise<void> {
    const c = containerd();
    const id = uniqueId('insp');
    const ref = `ckpt/${id}:v1`;
    const createdTime = new Date().toISOString();
    expectExit(c, await ctrRunDetached(c, { ...lane, runtime }, id, ['sh', '-c', SCRIPT], ['--env', `${VAR}=${VALUE}`]), 0);
    try {
      await waitForStatus(c, id, 'RUNNING');
      await waitListening(c, id);
      await ctrOk(c, ['container', 'checkpoint', '--task', '--rw', '--image', id, ref]);
      const archive = await assembleArchive(c, { id, ref, name: `${id}-${runtime === GO_SHIM ? 'go' : 'ferry'}`, runtime, dir: tmp, compress, createdTime, checkpointedTime: new Date().toISOString() });
      await use(archive, id, ref);
    } finally {
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitForStatus(c, id, 'STOPPED').catch(() => undefined);
      await c.ctr(['task', 'rm', '-f', id]);
      await c.ctr(['container', 'rm', id]);
      await c.ctr(['image', 'rm', '--sync', ref]);
    }
  }

  test.each(producers)(`checkpoint by %s: tree, command lines, env var, open file, listening port; checkpointctl agrees; the same from containerd's checkpoint image and from an OCI checkpoint image [${lane.name}]`, async (runtime) => {
    await withCheckpoint(runtime, runtime === GO_SHIM ? undefined : 'zstd', async (archive, id, ref) => {
      const j = await ferryJson([archive.file, '--all']);
      expect(j).toMatchObject({ container_name: archive.name, id: archive.config.id, runtime, engine: 'containerd', image: archive.config.rootfsImageName });
      expectTheFacts(j);

      // The tree view for people names the same facts.
      const { stdout: tree } = await run(FERRY, ['inspect', archive.file, '--all'], { maxBuffer: 64 << 20 });
      expect(tree).toContain(`${VAR}=${VALUE}`);
      expect(tree).toContain('/tmp/held');
      expect(tree).toMatch(new RegExp(`\\[TCP \\(LISTEN\\)\\] [^\\n]*:${PORT} `));

      // checkpointctl 1.3.0 on the same archive.
      await expectCheckpointctlAgrees(archive.file, j, Boolean(archive.stats));

      const show = await run('checkpointctl', ['show', archive.file]);
      expect(show.stdout).toContain(archive.name);

      // --verify: complete.
      expect((await run(FERRY, ['inspect', '--verify', archive.file])).stdout).toContain('Verify: complete');

      // containerd's own checkpoint image, by name: the same processes, files, sockets and
      // statistics; the container is its id (ctr's containers have no other name), the image the
      // base image, the root-fs diff the RW layer.
      const native = await ferryImageJson(ref);
      expectTheFacts(native);
      expect(native).toMatchObject({ container_name: id, id, image: containerd().image!.name, runtime, engine: 'containerd', checkpoint_image: { name: ref, format: 'containerd' } });
      for (const key of ['process_tree', 'file_descriptors', 'sockets', 'statistics'] as const) expect({ key, value: native[key] }).toEqual({ key, value: j[key] });
      expect(native.checkpoint_size.total_size).toBe(j.checkpoint_size.total_size);
      expect(native.checkpoint_size.memory_pages_size).toBe(j.checkpoint_size.memory_pages_size);
      expect(native.checkpoint_size.root_fs_diff_size).toBeGreaterThan(0);
      // --memory reads the pages where they lie in the image's CRIU tar (containerd's Read by offset).
      const table = await runFerry(containerd(), ['inspect', ref, '--memory', '--format', 'json']);
      expect(table.code).toBe(0);
      expect(JSON.parse(table.stdout)).toContainEqual(expect.objectContaining({ pid: native.process_tree!.pid, process_name: 'sh', memory_size: expect.any(Number) }));
      const found = await runFerry(containerd(), ['inspect', ref, '--memory', String(native.process_tree!.pid), '--search', `${VAR}=${VALUE}`, '--format', 'json']);
      expect(found.code).toBe(0);
      expect(JSON.parse(found.stdout)).toContainEqual(expect.objectContaining({ match: `${VAR}=${VALUE}`, address: expect.stringMatching(/^0x[0-9a-f]+$/) }));

      // The archive at / of an image that buildah built, imported into containerd: exactly what
      // the archive shows, plus the image it came from.
      const imageName = `localhost/ferry-inspect-${id}:latest`;
      const oci = path.join(tmp, `${id}.oci.tar`);
      await buildahCheckpointImage({ archive: archive.file, name: imageName, annotations: { 'org.criu.checkpoint.container.name': archive.name }, ociArchive: oci });
      await ctrOk(containerd(), ['images', 'import', oci]);
      try {
        const fromImage = await ferryImageJson(imageName);
        expect(fromImage.checkpoint_image).toMatchObject({ name: imageName, format: 'oci', annotations: { 'org.criu.checkpoint.container.name': archive.name } });
        delete fromImage.checkpoint_image;
        expectTheFacts(fromImage);
        expect(fromImage).toEqual(j);
      } finally {
        await containerd().ctr(['image', 'rm', '--sync', imageName]);
      }
    });
  });

  test(`an image name that is not a checkpoint, or no image at all, is one clear line [${lane.name}]`, async () => {
    const c = containerd();
    const notCheckpoint = await runFerry(c, ['inspect', c.image!.name]);
    expect(notCheckpoint.code).toBe(1);
    expect(notCheckpoint.stderr.trim()).toBe(`ferry inspect: image ${c.image!.name} is not a checkpoint image: none of org.criu.checkpoint.container.name, io.kubernetes.cri-o.annotations.checkpoint.name, io.podman.annotations.checkpoint.name, io.podman.annotations.checkpoint.runtime.name on its index or manifest, and no application/vnd.containerd.container.criu.checkpoint.criu.tar`);
    const none = await runFerry(c, ['inspect', 'ckpt/no-such:v1']);
    expect(none.code).toBe(1);
    expect(none.stderr.trim()).toBe(`ferry inspect: ckpt/no-such:v1 is neither a file or directory here nor an image in containerd (namespace ${c.namespace})`);
  });
});

// Issue 8 with ferry's own checkpoint image: one `ferry checkpoint --export F --create-image REF
// --push` writes the archive and the image of the same dump; the image is inspected where it was
// made (containerd's image store) and, after the push to Debian's docker-registry on loopback
// (TLS), on a second containerd with its own root and state (another host) that pulled it through
// ferry's pull (containerd's Transfer service). Every view must show what the archive shows.
// checkpointctl 1.3.0 reads files only (`checkpointctl inspect REF`: "stat REF: no such file or
// directory"), so it is given the archive and the image's one layer as the other host pulled it:
// that layer is the archive's files in a zstd tar, which it reads like an archive.
describe.each(lanes().filter((l) => !l.grpc))('ferry inspect of a checkpoint image ferry made, here and pulled on another host [$name]', (lane: Lane) => {
  let reg: Registry;
  let here: Containerd;
  let there: Containerd;
  let tmp = '';
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-inspect-image-'));
    reg = await startRegistry();
    here = await startContainerd({ version: lane.containerd, env: reg.containerdEnv() });
    there = await startContainerd({ version: lane.containerd, env: reg.containerdEnv(), importImage: false });
  }, 180000);
  afterAll(async () => {
    await here?.stop();
    await there?.stop();
    await reg?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }, 120000);

  async function inspectImage(c: Containerd, ref: string): Promise<Inspect> {
    const r = await runFerry(c, ['inspect', ref, '--all', '--format', 'json']);
    if (r.code !== 0) throw new Error(`ferry inspect ${ref} exited ${r.code}: ${r.stderr}`);
    const arr = JSON.parse(r.stdout) as Inspect[];
    expect(arr).toHaveLength(1);
    return arr[0];
  }

  test(`the image in the store and the pulled image show what the --export archive of the same checkpoint shows; checkpointctl agrees on the archive and on the pulled layer [${lane.name}]`, async () => {
    const id = uniqueId('inspimg');
    const ref = `${reg.host}/ferry-inspect/${id}:v1`;
    const file = path.join(tmp, `${id}.tar.zst`);
    expectExit(here, await ctrRunDetached(here, lane, id, ['sh', '-c', SCRIPT], ['--env', `${VAR}=${VALUE}`]), 0);
    try {
      await waitForStatus(here, id, 'RUNNING');
      await waitListening(here, id);
      const cp = await runFerry(here, ['--json', 'checkpoint', id, '--export', file, '--create-image', ref, '--push'], { env: { TMPDIR: tmp } });
      if (cp.code !== 0) throw new Error(`ferry checkpoint exited ${cp.code}: ${cp.stderr}`);
      const made = JSON.parse(cp.stdout) as { image: { manifest: { digest: string }; layer: { digest: string } } };

      // The archive: ferry's own archive of a ferry checkpoint, as the inspect tests read them.
      const j = await ferryJson([file, '--all']);
      expectTheFacts(j);
      expect(j).toMatchObject({ container_name: id, id, runtime: lane.runtime, engine: 'containerd', image: here.image!.name, checkpointed: expect.any(String) });
      expect(j.statistics?.pages_written).toBeGreaterThan(0);
      await expectCheckpointctlAgrees(file, j, true);

      /** The image view is the archive's view plus which image it was read from. */
      const expectSameAsArchive = (v: Inspect, name: string) => {
        expect(v.checkpoint_image).toMatchObject({ name, format: 'oci', digest: made.image.manifest.digest, annotations: expect.objectContaining({ 'org.criu.checkpoint.container.name': id, 'io.podman.annotations.checkpoint.name': id }) });
        const rest = { ...v };
        delete rest.checkpoint_image;
        expect(rest).toEqual(j);
      };
      // In containerd's image store, where ferry made it.
      expectSameAsArchive(await inspectImage(here, ref), ref);

      // On the other host, pulled from the registry: nothing of it was there before.
      expect((await there.ctr(['images', 'ls', '-q'])).stdout).toBe('');
      const conn = new Connection(there.address, there.namespace);
      try {
        await pullImage(conn, ref);
      } finally {
        conn.close();
      }
      const pulled = await inspectImage(there, ref);
      expectSameAsArchive(pulled, ref);
      const verified = await runFerry(there, ['inspect', '--verify', ref]);
      expect({ code: verified.code, stderr: verified.stderr }).toEqual({ code: 0, stderr: '' });
      expect(verified.stdout).toContain('Verify: complete');

      // checkpointctl on the layer the other host pulled: the same as on the archive, and as ferry.
      const layer = path.join(tmp, `${id}.layer.tar.zst`);
      fs.writeFileSync(layer, execFileSync(there.ctrPath, ['-a', there.address, '-n', there.namespace, 'content', 'get', made.image.layer.digest], { maxBuffer: 1 << 28 }));
      await expectCheckpointctlAgrees(layer, { ...pulled, checkpoint_image: undefined }, true);
    } finally {
      // ferry checkpoint stopped the task: only a failure before it leaves one running.
      if (await taskRow(here, id)) {
        await here.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitForStatus(here, id, 'STOPPED').catch(() => undefined);
        await here.ctr(['task', 'rm', '-f', id]);
      }
      await here.ctr(['container', 'rm', id]);
      await here.ctr(['image', 'rm', '--sync', ref]);
      await there.ctr(['image', 'rm', '--sync', ref]);
    }
  });
});
