// What a restore needs from a checkpoint archive's metadata, whichever engine wrote it
// (../shared/checkpoint-formats.md §1.7): the engine, the container's name, the base image to
// build the root filesystem on, and the saved OCI spec. config.dump and spec.dump are untrusted:
// they are read with the bounded, non-following reader and every field used is type-checked;
// anything restore needs and cannot find is one clear error naming the file and the field.
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { ArchiveFile, CONTAINER_MANAGER_ANNOTATION, CriAnnotation, type Engine } from '../../format/layout';
import { readCheckpointJson } from '../../format/safe-read';

/** The OCI spec fields restore reads or rewrites; the rest is carried over as it is. */
export interface SavedSpec {
  process: Record<string, unknown>;
  root?: { path?: string; readonly?: boolean };
  hostname?: string;
  mounts?: SpecMount[];
  annotations?: Record<string, string>;
  linux: Record<string, unknown> & { namespaces?: { type: string; path?: string }[]; cgroupsPath?: string };
  [key: string]: unknown;
}

export interface SpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/** How the checkpoint names its base image, strongest first. */
export interface BaseImageRef {
  /** A manifest or index digest (`sha256:…`) from a `repo@sha256:…` reference. */
  digest?: string;
  /** The image config's digest (Podman's rootfsImageID, CRI-O's storage image ID). */
  configDigest?: string;
  /** `repo@sha256:…`: pullable by digest. */
  digestedName?: string;
  /** A pullable name (`docker.io/library/busybox:latest`). */
  name?: string;
}

export interface CheckpointMetadata {
  engine: Engine;
  /** The container's name as the engine knew it (checkpointctl's CONTAINER column). */
  name: string;
  baseImage: BaseImageRef;
  spec: SavedSpec;
  /** The runtime the checkpoint was taken with (informational). */
  runtime: string;
}

const CRIO_METADATA_ANNOTATION = 'io.kubernetes.cri-o.Metadata';
const HEX_DIGEST = /^[a-f0-9]{64}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

async function readJsonObject(dir: string, name: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = await readCheckpointJson(dir, name);
  } catch (err) {
    if (err instanceof NotFoundError) throw new InvalidArgumentError(`the checkpoint has no ${name}`);
    // Named as the archive names it, not by ferry's staging path.
    if (err instanceof InvalidArgumentError && /is not valid JSON$/.test(err.message)) throw new InvalidArgumentError(`${name} is not valid JSON`);
    throw err;
  }
  if (!isObject(v)) throw new InvalidArgumentError(`${name} is not a JSON object`);
  return v;
}

/** The engine that wrote the checkpoint, as checkpointctl decides it (spec.dump's io.container.manager). */
export function engineOf(spec: { annotations?: Record<string, unknown> }): Engine {
  switch (spec.annotations?.[CONTAINER_MANAGER_ANNOTATION]) {
    case 'libpod': return 'Podman';
    case 'cri-o': return 'CRI-O';
    default: return 'containerd';
  }
}

function checkSpec(v: Record<string, unknown>): SavedSpec {
  const where = ArchiveFile.specDump;
  if (!isObject(v.process)) throw new InvalidArgumentError(`${where} has no "process" object`);
  if (!isObject(v.linux)) throw new InvalidArgumentError(`${where} has no "linux" object`);
  if (v.annotations !== undefined) {
    if (!isObject(v.annotations)) throw new InvalidArgumentError(`${where}: "annotations" is not an object`);
    for (const [k, val] of Object.entries(v.annotations)) {
      if (typeof val !== 'string') throw new InvalidArgumentError(`${where}: annotation ${JSON.stringify(k)} is not a string`);
    }
  }
  if (v.mounts !== undefined) {
    if (!Array.isArray(v.mounts)) throw new InvalidArgumentError(`${where}: "mounts" is not an array`);
    for (const m of v.mounts) {
      if (!isObject(m) || typeof m.destination !== 'string' || m.destination === '') {
        throw new InvalidArgumentError(`${where}: a mount has no destination`);
      }
      if (m.source !== undefined && typeof m.source !== 'string') throw new InvalidArgumentError(`${where}: mount ${m.destination} has a non-string source`);
      if (m.options !== undefined && (!Array.isArray(m.options) || m.options.some((o) => typeof o !== 'string'))) {
        throw new InvalidArgumentError(`${where}: mount ${m.destination} has options that are not strings`);
      }
    }
  }
  const ns = v.linux.namespaces;
  if (ns !== undefined) {
    if (!Array.isArray(ns) || ns.some((n) => !isObject(n) || typeof n.type !== 'string' || (n.path !== undefined && typeof n.path !== 'string'))) {
      throw new InvalidArgumentError(`${where}: linux.namespaces is not a list of {type, path}`);
    }
  }
  return v as SavedSpec;
}

/**
 * The base image as the engine recorded it. containerd's CRI writes rootfsImageRef as
 * `repo@sha256:<manifest>` (sometimes a bare `sha256:`, containerd issue 12876, which is an
 * image id); CRI-O writes a storage image id there; Podman writes rootfsImageID (the config
 * digest, bare hex). An image id names the config, so it is matched against config digests.
 */
export function baseImageOf(engine: Engine, config: Record<string, unknown>): BaseImageRef {
  const out: BaseImageRef = {};
  const name = str(config.rootfsImageName) || str(config.rootfsImage) || str(config.RawImageName);
  const ref = str(config.rootfsImageRef);
  const id = str(config.rootfsImageID);
  const asConfigDigest = (s: string): string | undefined => {
    if (HEX_DIGEST.test(s)) return `sha256:${s}`;
    if (SHA256_DIGEST.test(s)) return s;
    return undefined;
  };
  if (engine === 'Podman') {
    out.configDigest = asConfigDigest(id);
  } else if (ref !== '') {
    const at = ref.lastIndexOf('@');
    if (at > 0 && SHA256_DIGEST.test(ref.slice(at + 1))) {
      out.digest = ref.slice(at + 1);
      out.digestedName = ref;
    } else {
      out.configDigest = asConfigDigest(ref);
    }
  }
  if (name !== '' && !SHA256_DIGEST.test(name) && !HEX_DIGEST.test(name)) out.name = name;
  if (!out.digest && !out.configDigest && !out.name && !out.digestedName) {
    throw new InvalidArgumentError(`${ArchiveFile.configDump} names no base image (rootfsImageName, rootfsImageRef or rootfsImageID)`);
  }
  return out;
}

/** The name every engine shows for the container (checkpointctl's rule), config.dump's name otherwise. */
export function containerNameOf(engine: Engine, config: Record<string, unknown>, spec: SavedSpec): string {
  const a = spec.annotations ?? {};
  let name = '';
  if (engine === 'CRI-O') {
    try {
      const meta = JSON.parse(a[CRIO_METADATA_ANNOTATION] ?? '') as unknown;
      if (isObject(meta)) name = str(meta.name);
    } catch {
      throw new InvalidArgumentError(`${ArchiveFile.specDump}: the ${CRIO_METADATA_ANNOTATION} annotation is not JSON`);
    }
  } else if (engine === 'containerd') {
    name = a[CriAnnotation.containerName] ?? '';
  }
  return name || str(config.name);
}

/** Reads and checks config.dump and spec.dump of an unpacked checkpoint archive. */
export async function readCheckpointMetadata(dir: string): Promise<CheckpointMetadata> {
  const config = await readJsonObject(dir, ArchiveFile.configDump);
  const spec = checkSpec(await readJsonObject(dir, ArchiveFile.specDump));
  const engine = engineOf(spec);
  return {
    engine,
    name: containerNameOf(engine, config, spec),
    baseImage: baseImageOf(engine, config),
    spec,
    runtime: str(config.runtime) || str(config.OCIRuntime),
  };
}
