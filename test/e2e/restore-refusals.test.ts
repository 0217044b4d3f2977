// Issue 4 items 7 and 10 (and 2, 5 through criu_image_path): restores that must be refused —
// CRIU missing or too old, checkpoint content with symlinks/FIFOs, pod and namespace
// mismatches — each with a clear error and nothing half-created: no task, no mount, no
// process, no ctrd-restore. ctr cannot send task options or a crafted checkpoint to a runtime
// not named io.containerd.runc.*, so Tasks.Create is called through containerd's gRPC API;
// containerd unpacks the crafted checkpoint tar into a directory exactly as for `ctr c
// restore`, so the shim sees what it would see from a crafted checkpoint image.
// ferry-only: the Go shim has none of these checks.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Containerd } from '../helpers/containerd';
import { findShimDaemons, waitFor } from '../helpers/procfs';
import { contentBytes, CRIU_TAR, ctrOk, editTar, ingestCheckpoint, restoreLeftovers, rootfsMounts, findCtrdRestore, type Desc } from '../helpers/checkpoint-content';
import { runcOptions, TasksClient } from '../helpers/containerd-api';
import { ctrRunDetached, expectExit, isGoShim, lanes, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import type { Any } from '../../api/gen/google/protobuf/any';
import type { Mount } from '../../api/gen/containerd/types/mount';

jest.setTimeout(180000);

const COUNTER = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];

/** The descriptor of the CRIU tar in a checkpoint image. */
async function criuTarOf(c: Containerd, ref: string): Promise<Desc> {
  const ls = await ctrOk(c, ['images', 'ls']);
  const line = ls.split('\n').find((l) => l.startsWith(ref + ' '));
  if (!line) throw new Error(`image ${ref} not listed:\n${ls}`);
  const digest = line.split(/\s+/)[2]!;
  const index = JSON.parse(await ctrOk(c, ['content', 'get', digest])) as { manifests: Desc[] };
  const d = index.manifests.find((m) => m.mediaType === CRIU_TAR);
  if (!d) throw new Error(`no CRIU tar in ${ref}`);
  return d;
}

const ferryLanes = lanes().filter((l) => !isGoShim(l));
const describeFerry = ferryLanes.length ? describe.each(ferryLanes) : describe.skip.each([{ name: 'no ferry lane' } as Lane]);

describeFerry('restore refusals [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  const ref = `ckpt/refusals-${process.pid}:v1`;
  let base: Desc;
  let baseTar: Buffer;
  let baseCount = 0;

  beforeAll(async () => {
    const c = containerd();
    const id = uniqueId('base');
    expectExit(c, await ctrRunDetached(c, lane, id, COUNTER), 0);
    await waitForStatus(c, id, 'RUNNING');
    await waitFor(async () => {
      const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('cat'), id, 'cat', '/tmp/count']);
      const n = Number.parseInt(r.stdout.trim(), 10);
      return n >= 30 ? (baseCount = n) : undefined;
    }, 20000, 200);
    await ctrOk(c, ['container', 'checkpoint', '--task', '--image', id, ref]);
    await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    await waitForStatus(c, id, 'STOPPED');
    await ctrOk(c, ['task', 'rm', id]);
    await ctrOk(c, ['container', 'rm', id]);
    base = await criuTarOf(c, ref);
    baseTar = await contentBytes(c, base.digest);
    expect(baseTar.length).toBe(base.size);
  });

  /**
   * A container record + snapshot from the checkpoint image, without a task: `ctr c restore`
   * without --live also creates the (unstarted) task, which is deleted again here.
   */
  async function restoredContainer(c: Containerd, prefix: string): Promise<{ id: string; mounts: Mount[] }> {
    const id = uniqueId(prefix);
    await ctrOk(c, ['container', 'restore', id, ref]);
    await ctrOk(c, ['task', 'rm', '-f', id]);
    await waitFor(() => findShimDaemons(c.address, id).length === 0 || undefined, 10000, 100);
    return { id, mounts: await rootfsMounts(c, id) };
  }

  async function expectNothingLeft(c: Containerd, id: string): Promise<void> {
    expect(await restoreLeftovers(c, id)).toEqual([]);
  }

  async function expectRefused(c: Containerd, prefix: string, opts: { checkpoint?: Desc; options?: Any }, message: RegExp): Promise<void> {
    const { id, mounts } = await restoredContainer(c, prefix);
    const api = new TasksClient(c.address, c.namespace);
    try {
      await expect(api.create({ containerId: id, rootfs: mounts, checkpoint: opts.checkpoint ? { ...opts.checkpoint, annotations: {} } : undefined, options: opts.options }))
        .rejects.toThrow(message);
      await expectNothingLeft(c, id);
    } finally {
      api.close();
      await c.ctr(['container', 'rm', id]);
    }
  }

  test(`CRIU missing: criu_path pointing nowhere is refused, naming where it looked [${lane.name}]`, async () => {
    const c = containerd();
    await expectRefused(c, 'nocriu', { checkpoint: base, options: runcOptions({ criuPath: '/nonexistent/sbin/criu' }) },
      /criu was not found: options\.criu_path "\/nonexistent\/sbin\/criu"/);
  });

  test(`CRIU too old: both versions are in the error [${lane.name}]`, async () => {
    const c = containerd();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-oldcriu-'));
    const fake = path.join(dir, 'criu');
    fs.writeFileSync(fake, '#!/bin/sh\necho "Version: 2.12"\n', { mode: 0o755 });
    try {
      await expectRefused(c, 'oldcriu', { checkpoint: base, options: runcOptions({ criuPath: fake }) },
        /is version 2\.12\.0; ferry needs 3\.0\.0 or newer/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`checkpoint content with a symlink is refused before CRIU reads it [${lane.name}]`, async () => {
    const c = containerd();
    const crafted = await ingestCheckpoint(c, editTar(baseTar, (d) => fs.symlinkSync('/etc/shadow', path.join(d, 'evil.img'))));
    await expectRefused(c, 'symlink', { checkpoint: crafted }, /evil\.img.*symlink|symlink.*evil\.img/i);
  });

  test(`checkpoint content with a FIFO is refused [${lane.name}]`, async () => {
    const c = containerd();
    const crafted = await ingestCheckpoint(c, editTar(baseTar, (d) => execFileSync('mkfifo', [path.join(d, 'pipe.img')])));
    await expectRefused(c, 'fifo', { checkpoint: crafted }, /pipe\.img/);
  });

  test(`a checkpoint taken inside a pod is refused outside one [${lane.name}]`, async () => {
    const c = containerd();
    const spec = { annotations: { 'io.kubernetes.cri.sandbox-id': 'abc123', 'io.kubernetes.cri.container-type': 'container' }, linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }] } };
    const crafted = await ingestCheckpoint(c, editTar(baseTar, (d) => fs.writeFileSync(path.join(d, 'spec.dump'), JSON.stringify(spec))));
    await expectRefused(c, 'pod', { checkpoint: crafted }, /inside a pod \(io\.kubernetes\.cri\.sandbox-id=abc123\) and the target container is not in one/);
  });

  test(`a namespace shared in the checkpoint but not in the target is refused [${lane.name}]`, async () => {
    const c = containerd();
    // ctr's default spec: pid, ipc, uts, mount, network namespaces of its own.
    const spec = { annotations: {}, linux: { namespaces: [{ type: 'pid' }, { type: 'ipc', path: '/proc/1/ns/ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }] } };
    const crafted = await ingestCheckpoint(c, editTar(baseTar, (d) => fs.writeFileSync(path.join(d, 'spec.dump'), JSON.stringify(spec))));
    await expectRefused(c, 'nsshare', { checkpoint: crafted }, /ipc namespace is shared, the target's is private/);
  });

  // Issue 8 item 6 / issue 9 item 7: CRIU trusts its images (with a truncated pages image CRIU
  // 4.1's restorer loops forever). The shim checks them before `runc restore`; criu_path is a
  // wrapper that records every CRIU invocation, so the test sees that CRIU was only asked its
  // version and never ran a restore.
  async function expectImagesRefused(prefix: string, edit: (dir: string) => void, message: RegExp): Promise<void> {
    const c = containerd();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-criuwrap-'));
    const calls = path.join(dir, 'calls');
    const wrapper = path.join(dir, 'criu');
    fs.writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> ${calls}\nexec criu "$@"\n`, { mode: 0o755 });
    try {
      const crafted = await ingestCheckpoint(c, editTar(baseTar, edit));
      await expectRefused(c, prefix, { checkpoint: crafted, options: runcOptions({ criuPath: wrapper }) }, message);
      const invoked = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n') : [];
      expect(invoked.every((line) => /^(-V|--version)$/.test(line))).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test(`a truncated pages image is refused before CRIU runs, naming the file and both lengths [${lane.name}]`, async () => {
    let truncated = '';
    await expectImagesRefused('truncpages', (d) => {
      const pages = fs.readdirSync(d).filter((n) => /^pages-\d+\.img$/.test(n)).sort((a, b) => fs.statSync(path.join(d, b)).size - fs.statSync(path.join(d, a)).size);
      truncated = pages[0]!;
      const size = fs.statSync(path.join(d, truncated)).size;
      fs.truncateSync(path.join(d, truncated), size - 4096);
    }, /restore refused: the checkpoint's CRIU images are incomplete or inconsistent: \S+\/pages-\d+\.img: is \d+ bytes, but pagemap-\d+\.img says \d+ bytes \(\d+ pages of 4096 bytes\): truncated/);
    expect(truncated).toMatch(/^pages-\d+\.img$/);
  });

  test(`a missing core image is refused before CRIU runs [${lane.name}]`, async () => {
    await expectImagesRefused('nocore', (d) => {
      const core = fs.readdirSync(d).filter((n) => /^core-\d+\.img$/.test(n)).sort()[0]!;
      fs.rmSync(path.join(d, core));
    }, /restore refused: the checkpoint's CRIU images are incomplete or inconsistent: \S+\/core-\d+\.img: missing/);
  });

  test(`criu_image_path naming a checkpoint archive: staged into ctrd-restore, restored, staging removed [${lane.name}]`, async () => {
    const c = containerd();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-archive-'));
    const archive = path.join(dir, 'checkpoint.tar');
    fs.writeFileSync(archive, baseTar);
    const { id, mounts } = await restoredContainer(c, 'archive');
    const api = new TasksClient(c.address, c.namespace);
    try {
      await api.create({ containerId: id, rootfs: mounts, options: runcOptions({ criuImagePath: archive }) });
      expect(findCtrdRestore(c.state).length).toBe(1);
      await api.start(id);
      await waitForStatus(c, id, 'RUNNING');
      expect(findCtrdRestore(c.state)).toEqual([]);
      const count = await waitFor(async () => {
        const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('cat'), id, 'cat', '/tmp/count']);
        const n = Number.parseInt(r.stdout.trim(), 10);
        return Number.isInteger(n) && n > baseCount ? n : undefined;
      }, 20000, 200);
      // Continued from the checkpoint (≥ 30 when taken), not restarted from 1.
      expect(count).toBeGreaterThan(baseCount);
    } finally {
      api.close();
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitForStatus(c, id, 'STOPPED').catch(() => undefined);
      await c.ctr(['task', 'rm', '-f', id]);
      await c.ctr(['container', 'rm', id]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
