// Checkpoint images read as checkpoint sources (src/format/checkpoint-image.ts), from an
// in-memory blob store: the archive at / of an image is inspected exactly like the archive
// itself, whichever engine's annotation marks it and wherever it sits (target, index,
// manifest); containerd's own checkpoint index gives its CRIU images, spec, RW layer size, base
// image and runtime; everything else is refused with one line naming what is wrong, before a
// large blob is read.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { Any } from '../../api/gen/google/protobuf/any';
import { openCheckpointImage, type BlobStore, type Descriptor } from '../../src/format/checkpoint-image';
import { openCheckpointSource } from '../../src/format/checkpoint-source';
import { inspectCheckpoint, type InspectOptions } from '../../src/format/checkpoint-inspect';
import { writeFakeCheckpoint } from '../helpers/criu-images';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const CRIU_TAR = 'application/vnd.containerd.container.criu.checkpoint.criu.tar';
const SPEC = 'application/vnd.containerd.container.checkpoint.config.v1+proto';
const OPTIONS = 'application/vnd.containerd.container.checkpoint.options.v1+proto';

class MemBlobs implements BlobStore {
  readonly blobs = new Map<string, Buffer>();
  readonly reads: string[] = [];

  put(data: Buffer | string, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    const digest = `sha256:${createHash('sha256').update(buf).digest('hex')}`;
    this.blobs.set(digest, buf);
    return { mediaType, digest, size: buf.length, ...extra };
  }

  json(v: unknown, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
    return this.put(JSON.stringify(v), mediaType, extra);
  }

  async read(d: Descriptor, maxBytes: number): Promise<Buffer> {
    const b = this.blobs.get(d.digest);
    if (!b) throw new Error(`blob ${d.digest} not found`);
    if (b.length > maxBytes) throw new Error(`blob ${d.digest} over ${maxBytes}`);
    this.reads.push(d.digest);
    return b;
  }

  input(d: Descriptor, describe: string) {
    return {
      describe,
      open: async () => {
        const b = this.blobs.get(d.digest);
        if (!b) throw new Error(`blob ${d.digest} not found`);
        this.reads.push(d.digest);
        return { stream: Readable.from([b]), close: async () => undefined };
      },
    };
  }
}

let tmp: string;
let stage: string;
let archive: Buffer;
let criuTar: Buffer;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ckimg-'));
  stage = path.join(tmp, 'stage');
  writeFakeCheckpoint(path.join(stage, 'checkpoint'));
  fs.writeFileSync(path.join(stage, 'config.dump'), JSON.stringify({ id: 'abc', name: 'c1', rootfsImageName: 'busybox', runtime: 'io.containerd.ferry.v2', createdTime: '2026-02-09T10:49:15Z', checkpointedTime: '2026-02-09T18:50:02Z' }));
  fs.writeFileSync(path.join(stage, 'spec.dump'), JSON.stringify({ annotations: { 'io.kubernetes.cri.container-name': 'web' }, mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }] }));
  fs.writeFileSync(path.join(stage, 'rootfs-diff.tar'), Buffer.alloc(2048));
  execFileSync('tar', ['-cf', path.join(tmp, 'a.tar'), '-C', stage, '.']);
  archive = fs.readFileSync(path.join(tmp, 'a.tar'));
  execFileSync('tar', ['-cf', path.join(tmp, 'criu.tar'), '-C', path.join(stage, 'checkpoint'), '.']);
  criuTar = fs.readFileSync(path.join(tmp, 'criu.tar'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ALL: InspectOptions = { psTree: true, psTreeCmd: true, psTreeEnv: true, files: true, sockets: true, mounts: true, stats: true, metadata: true };

interface Where { target?: Record<string, string>; index?: Record<string, string>; manifest?: Record<string, string> }

/** An OCI image of `layer` with annotations where asked: returns the target descriptor. */
function ociImage(blobs: MemBlobs, layer: Buffer, where: Where, asIndex: boolean, layerType = OCI_LAYER): Descriptor {
  const l = blobs.put(layer, layerType);
  const config = blobs.json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [l.digest] } }, 'application/vnd.oci.image.config.v1+json');
  const manifest = blobs.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [l], annotations: where.manifest }, OCI_MANIFEST);
  if (!asIndex) return { ...manifest, annotations: where.target };
  return { ...blobs.json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...manifest, platform: { os: 'linux', architecture: 'amd64' } }], annotations: where.index }, OCI_INDEX), annotations: where.target };
}

test.each([
  ['containerd CRI key on the manifest, target a manifest', { manifest: { 'org.criu.checkpoint.container.name': 'web' } }, false],
  ['containerd CRI key on the index', { index: { 'org.criu.checkpoint.container.name': 'web' } }, true],
  ['CRI-O key on the manifest of an index', { manifest: { 'io.kubernetes.cri-o.annotations.checkpoint.name': 'web' } }, true],
  ['Podman key on the target descriptor (ctr import keeps index.json annotations there)', { target: { 'io.podman.annotations.checkpoint.name': 'web' } }, false],
] as [string, Where, boolean][])('the archive at / of an image (%s) is inspected exactly as the archive', async (_what, where, asIndex) => {
  const blobs = new MemBlobs();
  const target = ociImage(blobs, archive, where, asIndex);
  const src = await openCheckpointImage('localhost/ckpt:1', target, blobs, { created: '2026-03-01T00:00:00.000Z' });
  expect(src.kind).toBe('oci-image');
  const fromImage = (await inspectCheckpoint(src, ALL)).json;
  const fromArchive = (await inspectCheckpoint(await openCheckpointSource(path.join(tmp, 'a.tar')), ALL)).json;
  expect(fromImage.checkpoint_image).toEqual({ name: 'localhost/ckpt:1', format: 'oci', digest: target.digest, media_type: target.mediaType, created: '2026-03-01T00:00:00.000Z', annotations: { ...where.target, ...where.index, ...where.manifest } });
  delete fromImage.checkpoint_image;
  expect(fromImage).toEqual(fromArchive);
  expect(fromImage).toMatchObject({ container_name: 'web', id: 'abc', checkpoint_size: { root_fs_diff_size: 2048 } });
});

test('a gzip or zstd layer is read as well', async () => {
  for (const [flag, type] of [['-z', 'application/vnd.oci.image.layer.v1.tar+gzip'], ['--zstd', 'application/vnd.oci.image.layer.v1.tar+zstd']]) {
    execFileSync('tar', ['-c', flag, '-f', path.join(tmp, 'l'), '-C', stage, '.']);
    const blobs = new MemBlobs();
    const target = ociImage(blobs, fs.readFileSync(path.join(tmp, 'l')), { manifest: { 'org.criu.checkpoint.container.name': 'web' } }, true, type);
    const j = (await inspectCheckpoint(await openCheckpointImage('x', target, blobs), { psTree: true, psTreeEnv: true })).json;
    expect(j.process_tree?.environment_variables?.FERRY_TEST_VAR).toBe('hello');
  }
});

test('of a multi-platform index the manifest for this platform is read', async () => {
  const blobs = new MemBlobs();
  const mine = ociImage(blobs, archive, { manifest: { 'org.criu.checkpoint.container.name': 'web' } }, false);
  const other = ociImage(blobs, Buffer.from('not a tar'), { manifest: { 'org.criu.checkpoint.container.name': 'web' } }, false);
  const index = blobs.json({ schemaVersion: 2, manifests: [{ ...other, platform: { os: 'linux', architecture: 'arm64' } }, { ...mine, platform: { os: 'linux', architecture: 'amd64' } }] }, OCI_INDEX);
  const src = await openCheckpointImage('x', index, blobs, { architecture: 'amd64' });
  expect((await inspectCheckpoint(src, {})).json.container_name).toBe('web');
  await expect(openCheckpointImage('x', index, blobs, { architecture: 's390x' })).rejects.toThrow('image x: index ' + index.digest + ' lists 2 manifests and none for linux/s390x');
});

/** containerd's `ctr c checkpoint --task --rw --image` index. */
function containerdCheckpoint(blobs: MemBlobs, o: { spec?: Buffer; withTar?: boolean } = {}): Descriptor {
  const spec = { ociVersion: '1.1.0', linux: { cgroupsPath: '/default/web-1' }, mounts: [{ destination: '/dev', type: 'tmpfs', source: 'tmpfs' }] };
  const any = o.spec ?? Buffer.from(Any.encode({ typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from(JSON.stringify(spec)) }).finish());
  const base = blobs.json({ schemaVersion: 2, layers: [] }, OCI_MANIFEST);
  const manifests = [
    base,
    blobs.put(Buffer.alloc(4321), 'application/vnd.oci.image.layer.v1.tar+gzip', { platform: { os: 'linux', architecture: 'amd64' } }),
    ...(o.withTar === false ? [] : [blobs.put(criuTar, CRIU_TAR)]),
    blobs.put(any, SPEC),
    blobs.put(Buffer.from([8, 0]), OPTIONS),
  ];
  return blobs.json({ schemaVersion: 2, manifests, annotations: { 'org.opencontainers.image.ref.name': 'docker.io/library/busybox:latest', 'io.containerd.checkpoint.runtime': 'io.containerd.runc.v2', 'io.containerd.checkpoint.snapshotter': 'overlayfs' } }, OCI_INDEX);
}

test("containerd's own checkpoint image: CRIU images, spec, RW layer size, base image and runtime", async () => {
  const blobs = new MemBlobs();
  const target = containerdCheckpoint(blobs);
  const src = await openCheckpointImage('ckpt/web:v1', target, blobs, { created: '2026-03-01T10:00:00.000Z' });
  expect(src.kind).toBe('containerd-image');
  const { json } = await inspectCheckpoint(src, { ...ALL, verify: true });
  const fromDir = (await inspectCheckpoint(await openCheckpointSource(path.join(stage, 'checkpoint')), ALL)).json;
  expect(json).toMatchObject({
    container_name: 'web-1', id: 'web-1', image: 'docker.io/library/busybox:latest', runtime: 'io.containerd.runc.v2', engine: 'containerd',
    created: '0001-01-01T00:00:00Z', checkpointed: '2026-03-01T10:00:00Z',
    checkpoint_size: { ...fromDir.checkpoint_size, root_fs_diff_size: 4321 },
    mounts: [{ destination: '/dev', type: 'tmpfs', source: 'tmpfs' }],
    verify: { ok: true, problems: [] },
    checkpoint_image: { name: 'ckpt/web:v1', format: 'containerd', digest: target.digest },
  });
  for (const k of ['process_tree', 'file_descriptors', 'sockets', 'statistics'] as const) expect(json[k]).toEqual(fromDir[k]);
});

test('what is not a checkpoint image, or is a bad one, is refused naming what is wrong, and no large blob is read', async () => {
  const blobs = new MemBlobs();
  const plain = ociImage(blobs, archive, {}, true);
  await expect(openCheckpointImage('busybox', plain, blobs)).rejects.toThrow(/^image busybox is not a checkpoint image: none of org.criu.checkpoint.container.name, io.kubernetes.cri-o.annotations.checkpoint.name, io.podman.annotations.checkpoint.name/);

  const l = blobs.put(archive, OCI_LAYER);
  const two = blobs.json({ schemaVersion: 2, layers: [l, l], annotations: { 'org.criu.checkpoint.container.name': 'x' } }, OCI_MANIFEST);
  await expect(openCheckpointImage('two', two, blobs)).rejects.toThrow('image two has 2 layers; a checkpoint image has one, the checkpoint archive at / (ferry reads no others)');

  const huge: Descriptor = { mediaType: OCI_MANIFEST, digest: `sha256:${'a'.repeat(64)}`, size: 5 * 1024 * 1024 };
  blobs.reads.length = 0;
  await expect(openCheckpointImage('huge', huge, blobs)).rejects.toThrow(`image huge: manifest sha256:${'a'.repeat(64)} is 5242880 bytes, over the 4194304-byte limit for an index or manifest`);
  expect(blobs.reads).toEqual([]);

  const lying = { ...blobs.json({ schemaVersion: 2, layers: [l] }, OCI_MANIFEST) };
  await expect(openCheckpointImage('lying', { ...lying, size: lying.size + 1 }, blobs)).rejects.toThrow(`image lying: manifest ${lying.digest} is ${lying.size} bytes, but its descriptor says ${lying.size + 1}`);
  const swapped = blobs.put('{"schemaVersion":2}', OCI_MANIFEST);
  blobs.blobs.set(swapped.digest, Buffer.from('{"schemaVersion":3}'));
  await expect(openCheckpointImage('swapped', swapped, blobs)).rejects.toThrow(`image swapped: manifest ${swapped.digest} does not match its digest`);
  await expect(openCheckpointImage('notjson', blobs.put('{', OCI_MANIFEST), blobs)).rejects.toThrow(/manifest sha256:[0-9a-f]+ is not valid JSON/);
  await expect(openCheckpointImage('baddesc', blobs.json({ layers: [{ mediaType: OCI_LAYER, digest: '../../etc/passwd', size: 1 }] }, OCI_MANIFEST), blobs)).rejects.toThrow(/layers\[0\] has no valid digest/);
  await expect(openCheckpointImage('blob', l, blobs)).rejects.toThrow(`image blob points at a ${OCI_LAYER}, not an image index or manifest`);
  const foreign = blobs.json({ layers: [blobs.put(archive, 'application/vnd.oci.image.layer.v1.tar+encrypted')], annotations: { 'org.criu.checkpoint.container.name': 'x' } }, OCI_MANIFEST);
  await expect(openCheckpointImage('enc', foreign, blobs)).rejects.toThrow('image enc: its layer is a application/vnd.oci.image.layer.v1.tar+encrypted, not a tar, tar+gzip or tar+zstd layer');
  const bare = blobs.json({ layers: [blobs.put(criuTar, OCI_LAYER)], annotations: { 'org.criu.checkpoint.container.name': 'x' } }, OCI_MANIFEST);
  await expect(openCheckpointImage('bare', bare, blobs)).rejects.toThrow('image bare: its layer holds bare CRIU images, not a checkpoint archive (no config.dump, spec.dump)');

  await expect(openCheckpointImage('notask', containerdCheckpoint(blobs, { withTar: false }), blobs)).rejects.toThrow('image notask is a containerd checkpoint without CRIU images (made without --task?): nothing to inspect');
  const wrongAny = Buffer.from(Any.encode({ typeUrl: 'types.containerd.io/something/Else', value: Buffer.from('{}') }).finish());
  await expect(openCheckpointImage('wrongany', containerdCheckpoint(blobs, { spec: wrongAny }), blobs)).rejects.toThrow(/its spec sha256:[0-9a-f]+ is a types.containerd.io\/something\/Else, not an OCI runtime spec/);
  const notJson = Buffer.from(Any.encode({ typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('[1') }).finish());
  await expect(openCheckpointImage('specjson', containerdCheckpoint(blobs, { spec: notJson }), blobs)).rejects.toThrow(/its spec sha256:[0-9a-f]+ is not a JSON object/);
});
