// Checkpoint images as an image store holds them, read without unpacking them to disk
// (../shared/checkpoint-formats.md §2):
//  - the "archive at / of a FROM-scratch image" (buildah, Podman --create-image, checkpointctl
//    build, CRI-O and containerd CRI restore from it): one layer whose files are a checkpoint
//    archive; recognised by any engine's checkpoint annotation (ImageAnnotation) on the image's
//    target descriptor, its index or its manifest;
//  - containerd's own `ctr c checkpoint` image: an index whose manifests are the CRIU images as a
//    tar (criu.tar), the container's spec as a protobuf Any (config.v1+proto), the RW layer, the
//    base image's descriptor, with the base image name, runtime and snapshotter as annotations.
// Blobs come from a BlobStore (containerd's content store in `ferry`, a directory in the unit
// tests). Indexes, manifests and the spec are read whole but bounded and checked (sizes and
// digests as the descriptor says); layers and the CRIU tar are streamed through the archive
// reader of checkpoint-source.ts.
import { createHash } from 'node:crypto';
import { Any } from '../../api/gen/google/protobuf/any';
import { InvalidArgumentError } from '../errors';
import { openArchiveSource, type ArchiveInput, type CheckpointSource, type SourceLimits } from './checkpoint-source';
import type { ContainerConfigDump, SpecDump } from './checkpoint-info';
import { ArchiveFile, ContainerdCheckpointAnnotation, ContainerdMediaType, DockerMediaType, ImageAnnotation, OciMediaType } from './layout';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** Where the blobs of an image come from. */
export interface BlobStore {
  /** The blob whole; refused when the descriptor or the store says it is larger than maxBytes. */
  read(d: Descriptor, maxBytes: number): Promise<Buffer>;
  /** The blob as an archive input (streamed, one pass per open; random access where the store has it). */
  input(d: Descriptor, describe: string): ArchiveInput;
}

/** Largest index or manifest read (the OCI distribution spec's limit for manifests is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Largest spec (config.v1+proto) read. */
export const MAX_SPEC_BYTES = 16 * 1024 * 1024;

/** A checkpoint image as ferry shows it, beside what the checkpoint says. */
export interface CheckpointImageInfo {
  name: string;
  /** `oci`: the archive at / of an image; `containerd`: containerd's own checkpoint index. */
  format: 'oci' | 'containerd';
  digest: string;
  mediaType: string;
  /** The checkpoint annotations found (target, index and manifest together). */
  annotations: Record<string, string>;
  /** When the image store created the image (for containerd's own: the checkpoint time). */
  created?: string;
}

const CHECKPOINT_ANNOTATIONS: readonly string[] = Object.values(ImageAnnotation);
const INDEX_TYPES: readonly string[] = [OciMediaType.index, DockerMediaType.manifestList];
const MANIFEST_TYPES: readonly string[] = [OciMediaType.manifest, DockerMediaType.manifest];
const LAYER_TYPES: readonly string[] = [OciMediaType.layer, OciMediaType.layerGzip, OciMediaType.layerZstd, DockerMediaType.layerGzip];
const SPEC_TYPE_URL_SUFFIX = 'opencontainers/runtime-spec/1/Spec';
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new InvalidArgumentError(`${what}: annotations are not a map of strings`);
  return v as Record<string, string>;
}

/** A descriptor of an index or manifest, checked field by field. */
export function checkDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new InvalidArgumentError(`${what} is not an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string') throw new InvalidArgumentError(`${what} has no mediaType`);
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new InvalidArgumentError(`${what} has no valid digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`${what} has no valid size`);
  const d: Descriptor = { mediaType, digest, size };
  const annotations = stringMap(v.annotations, what);
  if (annotations) d.annotations = annotations;
  if (isObject(v.platform)) {
    const p = v.platform;
    d.platform = { os: typeof p.os === 'string' ? p.os : undefined, architecture: typeof p.architecture === 'string' ? p.architecture : undefined, variant: typeof p.variant === 'string' ? p.variant : undefined };
  }
  return d;
}

interface ImageJson {
  mediaType?: string;
  manifests?: Descriptor[];
  layers?: Descriptor[];
  annotations?: Record<string, string>;
}

/** Reads an index or a manifest: bounded, its digest checked, its descriptors checked. */
export async function readImageJson(blobs: BlobStore, d: Descriptor, what: string): Promise<ImageJson> {
  if (d.size > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`${what} ${d.digest} is ${d.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit for an index or manifest`);
  const bytes = await blobs.read(d, MAX_MANIFEST_BYTES);
  checkDigest(bytes, d, what);
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`${what} ${d.digest} is not valid JSON`);
  }
  if (!isObject(v)) throw new InvalidArgumentError(`${what} ${d.digest} is not a JSON object`);
  const out: ImageJson = { annotations: stringMap(v.annotations, `${what} ${d.digest}`) };
  if (typeof v.mediaType === 'string') out.mediaType = v.mediaType;
  for (const key of ['manifests', 'layers'] as const) {
    const list = v[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new InvalidArgumentError(`${what} ${d.digest}: ${key} is not a list`);
    if (list.length > 10000) throw new InvalidArgumentError(`${what} ${d.digest} lists ${list.length} ${key}, more than 10000`);
    out[key] = list.map((x, i) => checkDescriptor(x, `${what} ${d.digest} ${key}[${i}]`));
  }
  return out;
}

function checkDigest(bytes: Buffer, d: Descriptor, what: string): void {
  if (bytes.length !== d.size) throw new InvalidArgumentError(`${what} ${d.digest} is ${bytes.length} bytes, but its descriptor says ${d.size}`);
  const [algorithm, hex] = d.digest.split(':');
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return;
  if (createHash(algorithm).update(bytes).digest('hex') !== hex) throw new InvalidArgumentError(`${what} ${d.digest} does not match its digest`);
}

function checkpointAnnotations(...maps: (Record<string, string> | undefined)[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of maps) for (const [k, v] of Object.entries(m ?? {})) if (k.startsWith('org.criu.checkpoint.') || k.startsWith('io.podman.annotations.checkpoint.') || k.startsWith('io.kubernetes.cri-o.annotations.checkpoint.') || k.startsWith('io.containerd.checkpoint.') || k === ContainerdCheckpointAnnotation.imageRefName) out[k] = v;
  return out;
}

const isCheckpointAnnotated = (a: Record<string, string>): boolean => CHECKPOINT_ANNOTATIONS.some((k) => k in a);

/** The manifest of an index for this platform (the only one, or the one for linux and `arch`). */
function pickManifest(index: ImageJson, what: string, arch: string): Descriptor {
  const manifests = (index.manifests ?? []).filter((m) => MANIFEST_TYPES.includes(m.mediaType));
  if (manifests.length === 1) return manifests[0];
  const mine = manifests.filter((m) => (m.platform?.os ?? 'linux') === 'linux' && m.platform?.architecture === arch);
  if (mine.length === 1) return mine[0];
  if (manifests.length === 0) throw new InvalidArgumentError(`${what} lists no image manifest`);
  throw new InvalidArgumentError(`${what} lists ${manifests.length} manifests and ${mine.length === 0 ? 'none' : 'more than one'} for linux/${arch}`);
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' };

export interface OpenImageOptions extends SourceLimits {
  /** The image's creation time in the store (RFC 3339). */
  created?: string;
  /** GOARCH of the platform to pick from a multi-platform index (default: this machine's). */
  architecture?: string;
}

/**
 * Opens image `name` (whose target is `target`) as a checkpoint source: the archive in its
 * layer, or containerd's own checkpoint. Refuses an image that is neither, naming what it lacks.
 */
export async function openCheckpointImage(name: string, target: Descriptor, blobs: BlobStore, o: OpenImageOptions = {}): Promise<CheckpointSource> {
  const where = `image ${name}`;
  const arch = o.architecture ?? GOARCH[process.arch] ?? process.arch;
  const isIndex = INDEX_TYPES.includes(target.mediaType);
  if (!isIndex && !MANIFEST_TYPES.includes(target.mediaType)) {
    throw new InvalidArgumentError(`${where} points at a ${target.mediaType || 'blob without a media type'}, not an image index or manifest`);
  }
  let index: ImageJson | undefined;
  let manifestDesc = target;
  if (isIndex) {
    index = await readImageJson(blobs, target, `${where}: index`);
    if ((index.manifests ?? []).some((m) => m.mediaType === ContainerdMediaType.criuTar)) {
      return openContainerdCheckpoint(name, target, index, blobs, o);
    }
    if ((index.manifests ?? []).some((m) => Object.values(ContainerdMediaType).includes(m.mediaType as never))) {
      throw new InvalidArgumentError(`${where} is a containerd checkpoint without CRIU images (made without --task?): nothing to inspect`);
    }
    manifestDesc = pickManifest(index, `${where}: index ${target.digest}`, arch);
  }
  const manifest = await readImageJson(blobs, manifestDesc, `${where}: manifest`);
  const annotations = checkpointAnnotations(target.annotations, index?.annotations, manifestDesc.annotations, manifest.annotations);
  if (!isCheckpointAnnotated(annotations)) {
    throw new InvalidArgumentError(`${where} is not a checkpoint image: none of ${CHECKPOINT_ANNOTATIONS.join(', ')} on its index or manifest, and no ${ContainerdMediaType.criuTar}`);
  }
  const layers = manifest.layers ?? [];
  if (layers.length !== 1) {
    throw new InvalidArgumentError(`${where} has ${layers.length} layers; a checkpoint image has one, the checkpoint archive at / (ferry reads no others)`);
  }
  const layer = layers[0];
  if (!LAYER_TYPES.includes(layer.mediaType)) throw new InvalidArgumentError(`${where}: its layer is a ${layer.mediaType}, not a tar, tar+gzip or tar+zstd layer`);
  const src = await openArchiveSource(blobs.input(layer, `${where} layer ${layer.digest}`), o);
  if (src.kind !== 'archive') throw new InvalidArgumentError(`${where}: its layer holds bare CRIU images, not a checkpoint archive (no config.dump, spec.dump)`);
  return {
    ...src,
    kind: 'oci-image',
    image: { name, format: 'oci', digest: target.digest, mediaType: target.mediaType, annotations, created: o.created },
  };
}

/** containerd's `ctr c checkpoint` index: CRIU tar, spec, RW layer, base image descriptor. */
async function openContainerdCheckpoint(name: string, target: Descriptor, index: ImageJson, blobs: BlobStore, o: OpenImageOptions): Promise<CheckpointSource> {
  const where = `image ${name}`;
  const manifests = index.manifests ?? [];
  const one = (mediaType: string): Descriptor | undefined => {
    const found = manifests.filter((m) => m.mediaType === mediaType);
    if (found.length > 1) throw new InvalidArgumentError(`${where} lists ${found.length} blobs of type ${mediaType}, where containerd writes one`);
    return found[0];
  };
  const criuTar = one(ContainerdMediaType.criuTar) as Descriptor;
  const specDesc = one(ContainerdMediaType.config);
  const rw = manifests.filter((m) => LAYER_TYPES.includes(m.mediaType));
  if (rw.length > 1) throw new InvalidArgumentError(`${where} lists ${rw.length} layers, where containerd writes one RW layer`);
  const base = manifests.find((m) => INDEX_TYPES.includes(m.mediaType) || MANIFEST_TYPES.includes(m.mediaType));
  const annotations = checkpointAnnotations(target.annotations, index.annotations);

  let spec: SpecDump = {};
  if (specDesc) {
    if (specDesc.size > MAX_SPEC_BYTES) throw new InvalidArgumentError(`${where}: its spec ${specDesc.digest} is ${specDesc.size} bytes, over the ${MAX_SPEC_BYTES}-byte limit`);
    const bytes = await blobs.read(specDesc, MAX_SPEC_BYTES);
    checkDigest(bytes, specDesc, `${where}: spec`);
    let any: Any;
    try {
      any = Any.decode(bytes);
    } catch {
      throw new InvalidArgumentError(`${where}: its spec ${specDesc.digest} is not a protobuf Any`);
    }
    if (!any.typeUrl.endsWith(SPEC_TYPE_URL_SUFFIX)) throw new InvalidArgumentError(`${where}: its spec ${specDesc.digest} is a ${any.typeUrl || 'message without a type URL'}, not an OCI runtime spec`);
    try {
      const v = JSON.parse(Buffer.from(any.value).toString('utf8')) as unknown;
      if (!isObject(v)) throw new Error('not an object');
      spec = v as SpecDump;
    } catch {
      throw new InvalidArgumentError(`${where}: its spec ${specDesc.digest} is not a JSON object`);
    }
  }

  const criu = await openArchiveSource(blobs.input(criuTar, `${where} CRIU tar ${criuTar.digest}`), o);
  const inner = criu.kind === 'criu-images' ? '' : `${ArchiveFile.checkpointDir}/`;
  const files = new Map<string, number>();
  for (const [n, size] of criu.files) if (n.startsWith(inner) && !n.slice(inner.length).includes('/')) files.set(`${ArchiveFile.checkpointDir}/${n.slice(inner.length)}`, size);
  if (rw[0]) files.set(ArchiveFile.rootfsDiffTar, rw[0].size);

  const cgroupsPath = isObject((spec as Record<string, unknown>).linux) ? (spec as { linux: { cgroupsPath?: unknown } }).linux.cgroupsPath : undefined;
  // containerd's default spec puts the container in cgroup /<namespace>/<id> (systemd: slice:prefix:id).
  const id = typeof cgroupsPath === 'string' ? (cgroupsPath.split(/[/:]/).filter(Boolean).pop() ?? '') : '';
  const baseName = annotations[ContainerdCheckpointAnnotation.imageRefName] ?? '';
  const config: ContainerConfigDump = {
    id,
    name: id,
    rootfsImage: baseName,
    rootfsImageName: baseName,
    rootfsImageRef: base?.digest,
    runtime: annotations[ContainerdCheckpointAnnotation.runtime] ?? '',
    checkpointedTime: o.created,
  };
  return {
    location: where,
    kind: 'containerd-image',
    files,
    skipped: criu.skipped,
    async readFile(fileName, maxBytes) {
      // The CRIU tar is the only content: top-level files CRIU leaves there (stats-dump, dump.log).
      if (!files.has(`${ArchiveFile.checkpointDir}/${fileName}`)) return undefined;
      return criu.images.read(fileName, maxBytes ?? MAX_SPEC_BYTES);
    },
    images: criu.images,
    metadata: { config, spec },
    image: { name, format: 'containerd', digest: target.digest, mediaType: target.mediaType, annotations, created: o.created },
  };
}
