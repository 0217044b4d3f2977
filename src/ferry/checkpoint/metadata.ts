// The metadata files of a checkpoint archive, built from containerd's records of the container:
//
// - config.dump: checkpointctl's ContainerConfig (the reduced struct containerd's CRI and CRI-O
//   write; checkpoint-formats.md §1.1). rootfsImageRef is the base image as a pullable
//   `repo@sha256:<digest of the image's target>`, which containerd's CRI pulls on restore and
//   ferry restore finds by digest; rootfsImageName is the name the container was created from.
// - spec.dump: the container's OCI spec as containerd stores it, plus one annotation:
//   `io.kubernetes.cri.container-name` = the container's name when the spec lacks it. checkpointctl
//   (1.3) names a containerd-flavoured checkpoint only by that annotation; a container made by
//   containerd's CRI already has it (and keeps its own value). runc ignores annotations, and
//   ferry restore rewrites it with the new name.
// - status.dump: the CRI ContainerStatus (Go JSON of cri-api, snake_case keys) that containerd's
//   CRI requires to restore an archive; its annotations/labels/metadata/image are what CRI reads.
//
// Containers made by containerd's CRI carry their CRI config in the extension
// `io.cri-containerd.container.metadata` (JSON); when it is there and well-formed, its name,
// labels, annotations and log path are used, so the archive matches what CRI itself writes.
import type { Container } from '../containerd/containers';
import type { Timestamp } from '../../../api/gen/google/protobuf/timestamp';
import { CriAnnotation } from '../../format/layout';

/** checkpointctl's lib.ContainerConfig, as JSON. */
export interface ConfigDump {
  id: string;
  name: string;
  rootfsImage?: string;
  rootfsImageRef?: string;
  rootfsImageName?: string;
  runtime?: string;
  createdTime: string;
  checkpointedTime: string;
  restoredTime: string;
  restored: boolean;
}

/** The cri-api ContainerStatus fields containerd's CRI writes and reads (Go JSON: omitempty). */
export interface StatusDump {
  id: string;
  metadata: { name: string; attempt?: number };
  state: number;
  created_at?: number;
  started_at?: number;
  image?: { image: string };
  image_ref?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  log_path?: string;
}

/** cri-api ContainerState.CONTAINER_RUNNING. */
const CRI_CONTAINER_RUNNING = 1;
/** Go's zero time.Time in JSON. */
export const GO_ZERO_TIME = '0001-01-01T00:00:00Z';
const CRI_METADATA_EXTENSION = 'io.cri-containerd.container.metadata';

/** What CRI's container metadata extension tells (only the fields used here). */
export interface CriContainerInfo {
  name: string;
  attempt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  logPath: string;
}

/** Go's time.Format(RFC3339Nano) in UTC: fraction without trailing zeros. */
export function goTime(t: Date | Timestamp | undefined): string {
  if (t === undefined) return GO_ZERO_TIME;
  const seconds = t instanceof Date ? Math.floor(t.getTime() / 1000) : t.seconds;
  const nanos = t instanceof Date ? (t.getTime() % 1000) * 1e6 : t.nanos;
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  const fraction = nanos > 0 ? `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}` : '';
  return `${base}${fraction}Z`;
}

const nanosOf = (t: Timestamp | undefined): number | undefined => (t ? t.seconds * 1e9 + t.nanos : undefined);

/**
 * `repo@sha256:…` for an image name and the digest of its target: the tag (and any digest) of
 * `name` is replaced by `digest`. A name that is already digested keeps its digest.
 */
export function digestedReference(name: string, digest: string): string {
  if (name.includes('@')) return name;
  const lastSlash = name.lastIndexOf('/');
  const colon = name.indexOf(':', lastSlash + 1);
  const repo = colon === -1 ? name : name.slice(0, colon);
  return `${repo}@${digest}`;
}

const isStringMap = (v: unknown): v is Record<string, string> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

/** CRI's extension of a container, when present and well-formed; undefined otherwise. */
export function criContainerInfo(container: Container): CriContainerInfo | undefined {
  const ext = container.extensions?.[CRI_METADATA_EXTENSION];
  if (!ext || ext.value.length === 0 || ext.value.length > 1 << 20) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(ext.value).toString('utf8'));
  } catch {
    return undefined;
  }
  const meta = (parsed as { Metadata?: { Config?: unknown; LogPath?: unknown } })?.Metadata;
  const config = meta?.Config as { metadata?: { name?: unknown; attempt?: unknown }; labels?: unknown; annotations?: unknown } | undefined;
  const name = config?.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  return {
    name,
    attempt: typeof config?.metadata?.attempt === 'number' ? config.metadata.attempt : 0,
    labels: isStringMap(config?.labels) ? config.labels : {},
    annotations: isStringMap(config?.annotations) ? config.annotations : {},
    logPath: typeof meta?.LogPath === 'string' ? meta.LogPath : '',
  };
}

export interface MetadataInput {
  container: Container;
  /** The container's OCI spec (parsed from its record). */
  spec: Record<string, unknown>;
  /** Digest of the base image's target in the image store, when the image is there. */
  imageDigest?: string;
  checkpointedAt: Date;
  /** The container's log file, when it logs to one (CRI's log_path). */
  logPath?: string;
}

export interface CheckpointMetadata {
  name: string;
  configDump: ConfigDump;
  specDump: Record<string, unknown>;
  statusDump: StatusDump;
}

export function buildMetadata(input: MetadataInput): CheckpointMetadata {
  const c = input.container;
  const cri = criContainerInfo(c);
  const specAnnotations = (typeof input.spec.annotations === 'object' && input.spec.annotations !== null ? input.spec.annotations : {}) as Record<string, string>;
  const name = cri?.name ?? specAnnotations[CriAnnotation.containerName] ?? c.id;
  const imageRef = c.image && input.imageDigest ? digestedReference(c.image, input.imageDigest) : undefined;

  const configDump: ConfigDump = {
    id: c.id,
    name,
    ...(c.image ? { rootfsImage: c.image } : {}),
    ...(imageRef ? { rootfsImageRef: imageRef } : {}),
    ...(c.image ? { rootfsImageName: c.image } : {}),
    ...(c.runtime?.name ? { runtime: c.runtime.name } : {}),
    createdTime: goTime(c.createdAt),
    checkpointedTime: goTime(input.checkpointedAt),
    restoredTime: GO_ZERO_TIME,
    restored: false,
  };

  const specDump = specAnnotations[CriAnnotation.containerName] !== undefined
    ? input.spec
    : { ...input.spec, annotations: { ...specAnnotations, [CriAnnotation.containerName]: name } };

  const logPath = cri?.logPath || input.logPath || '';
  const statusDump: StatusDump = {
    id: c.id,
    metadata: { name, ...(cri?.attempt ? { attempt: cri.attempt } : {}) },
    state: CRI_CONTAINER_RUNNING,
    ...(nanosOf(c.createdAt) ? { created_at: nanosOf(c.createdAt) } : {}),
    ...(c.image ? { image: { image: c.image } } : {}),
    ...(imageRef ? { image_ref: imageRef } : {}),
    labels: cri?.labels ?? { ...c.labels },
    annotations: cri?.annotations ?? {},
    ...(logPath ? { log_path: logPath } : {}),
  };
  return { name, configDump, specDump, statusDump };
}
