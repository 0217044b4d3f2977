// The base image a restored container's root filesystem is built on, found in containerd's image
// store the way the checkpoint names it: by manifest/index digest (containerd CRI's
// `repo@sha256:`), by config digest (Podman's rootfsImageID, CRI-O's image id: the image config's
// digest), or by name. Only when it is not there is it pulled (through containerd, by the
// digested reference first). The image's blobs come from containerd's content store, which may
// hold anything: manifests and configs are read with a size cap and parsed defensively.
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { findImage, listImages, readContentBytes, type Connection, type Image } from '../containerd';
import type { BaseImageRef } from './checkpoint-metadata';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export interface ResolvedImage {
  name: string;
  /** The image target's digest (manifest or index). */
  targetDigest: string;
  manifestDigest: string;
  configDigest: string;
  /** Layer descriptors of the platform manifest, in order. */
  layers: { mediaType: string; digest: string; size: number }[];
  /** The uncompressed layer digests (config rootfs.diff_ids). */
  diffIds: string[];
}

/** A function that pulls a reference into containerd's image store (the export side's pull). */
export type PullImage = (conn: Connection, ref: string) => Promise<Image>;

const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' };
export const hostPlatform = { os: 'linux', architecture: GO_ARCH[process.arch] ?? process.arch };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

async function readJsonBlob(conn: Connection, digest: string, what: string): Promise<Record<string, unknown>> {
  const bytes = await readContentBytes(conn, digest, MAX_MANIFEST_BYTES);
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`${what} ${digest} in containerd's content store is not JSON`);
  }
  if (!isObject(v)) throw new InvalidArgumentError(`${what} ${digest} is not a JSON object`);
  return v;
}

function descriptor(v: unknown, what: string): { mediaType: string; digest: string; size: number; platform?: Record<string, unknown> } {
  if (!isObject(v) || typeof v.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(v.digest)) {
    throw new InvalidArgumentError(`${what}: descriptor without a sha256 digest`);
  }
  return { mediaType: typeof v.mediaType === 'string' ? v.mediaType : '', digest: v.digest, size: typeof v.size === 'number' ? v.size : 0, platform: isObject(v.platform) ? v.platform : undefined };
}

/** Resolves an image's target to the host platform's manifest, its config and layers. */
export async function resolveImage(conn: Connection, image: Image): Promise<ResolvedImage> {
  const target = image.target;
  if (!target) throw new InvalidArgumentError(`image ${image.name} has no target`);
  let manifestDigest = target.digest;
  let doc = await readJsonBlob(conn, manifestDigest, `image ${image.name}: manifest`);
  const isIndex = target.mediaType === MediaType.ociIndex || target.mediaType === MediaType.dockerList || Array.isArray(doc.manifests);
  if (isIndex) {
    const manifests = (Array.isArray(doc.manifests) ? doc.manifests : []).map((m) => descriptor(m, `image ${image.name}: index`));
    const pick = manifests.find((m) => m.platform?.os === hostPlatform.os && m.platform?.architecture === hostPlatform.architecture)
      ?? manifests.find((m) => !m.platform);
    if (!pick) throw new NotFoundError(`image ${image.name} has no manifest for ${hostPlatform.os}/${hostPlatform.architecture}`);
    manifestDigest = pick.digest;
    doc = await readJsonBlob(conn, manifestDigest, `image ${image.name}: manifest`);
  }
  const config = descriptor(doc.config, `image ${image.name}: manifest`);
  const layers = (Array.isArray(doc.layers) ? doc.layers : []).map((l) => descriptor(l, `image ${image.name}: manifest layers`));
  const configDoc = await readJsonBlob(conn, config.digest, `image ${image.name}: config`);
  const rootfs = isObject(configDoc.rootfs) ? configDoc.rootfs : {};
  const diffIds = Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids.filter((d): d is string => typeof d === 'string') : [];
  if (diffIds.length !== layers.length) {
    throw new InvalidArgumentError(`image ${image.name}: ${layers.length} layers but ${diffIds.length} diff_ids in its config`);
  }
  return { name: image.name, targetDigest: target.digest, manifestDigest, configDigest: config.digest, layers, diffIds };
}

/** `busybox` → `docker.io/library/busybox:latest`, as containerd's reference parser normalises names. */
export function normaliseImageName(name: string): string {
  let n = name;
  const firstSlash = n.indexOf('/');
  const domain = firstSlash === -1 ? '' : n.slice(0, firstSlash);
  if (firstSlash === -1 || (!domain.includes('.') && !domain.includes(':') && domain !== 'localhost')) {
    n = `docker.io/${firstSlash === -1 ? `library/${n}` : n}`;
  }
  const lastPart = n.slice(n.lastIndexOf('/') + 1);
  if (!lastPart.includes(':') && !lastPart.includes('@')) n = `${n}:latest`;
  return n;
}

/** The image the checkpoint names, if containerd has it; no pull. */
export async function findBaseImage(conn: Connection, ref: BaseImageRef): Promise<ResolvedImage | undefined> {
  if (ref.digestedName) {
    const byName = await findImage(conn, ref.digestedName);
    if (byName) return resolveImage(conn, byName);
  }
  const images = ref.digest || ref.configDigest ? await listImages(conn) : [];
  if (ref.digest) {
    const hit = images.find((i) => i.target?.digest === ref.digest);
    if (hit) return resolveImage(conn, hit);
  }
  if (ref.configDigest) {
    // Prefer the image of that name, if it is the one; else any image with this config.
    const named = ref.name ? images.filter((i) => i.name === normaliseImageName(ref.name!) || i.name === ref.name) : [];
    for (const image of [...named, ...images.filter((i) => !named.includes(i))]) {
      let r: ResolvedImage;
      try {
        r = await resolveImage(conn, image);
      } catch {
        continue; // an image of another platform, or with blobs missing: not this one
      }
      if (r.configDigest === ref.configDigest) return r;
    }
    // A config digest names exactly one image: a same-named image of other content is not it.
    return undefined;
  }
  if (ref.name) {
    for (const name of new Set([ref.name, normaliseImageName(ref.name)])) {
      const image = await findImage(conn, name);
      if (image) return resolveImage(conn, image);
    }
  }
  return undefined;
}

export interface EnsureResult {
  image: ResolvedImage;
  pulled: boolean;
}

/** The base image pulled, for a restore whose findBaseImage found none in the store (never pulled otherwise). */
export async function pullBaseImage(conn: Connection, ref: BaseImageRef, pull: PullImage | undefined): Promise<EnsureResult> {
  const describe = [ref.digestedName, ref.name, ref.configDigest && `config ${ref.configDigest}`, ref.digest].filter(Boolean).join(', ');
  const candidates = [ref.digestedName, ref.name].filter((n): n is string => !!n);
  if (candidates.length === 0) {
    throw new NotFoundError(`base image (${describe}) is not in containerd's image store and the checkpoint names no reference to pull`);
  }
  if (!pull) throw new NotFoundError(`base image ${describe} is not in containerd's image store`);
  const failures: string[] = [];
  for (const name of candidates) {
    try {
      const pulledImage = await pull(conn, name);
      const resolved = await resolveImage(conn, pulledImage);
      if (ref.configDigest && resolved.configDigest !== ref.configDigest) {
        failures.push(`${name} has config ${resolved.configDigest}, the checkpoint's is ${ref.configDigest}`);
        continue;
      }
      return { image: resolved, pulled: true };
    } catch (err) {
      failures.push(`${name}: ${(err as { details?: string }).details ?? (err as Error).message}`);
    }
  }
  throw new NotFoundError(`base image is not in containerd's image store and could not be pulled (${failures.join('; ')})`);
}
