// The facts of a checkpoint as checkpointctl shows them (its internal/container.go and json.go):
// which engine wrote it (spec.dump's io.container.manager: libpod → Podman, cri-o → CRI-O,
// anything else → containerd), the container's name, image, id, runtime and times from
// config.dump and spec.dump, and the sizes of the CRIU images, their memory pages and the root-fs
// diff, from the archive's file sizes. ferry adds what the checkpoint records of CRIU and the
// host (dump.log's version and kernel lines, inventory.img's image version).
import { InvalidArgumentError } from '../errors';
import type { CheckpointSource } from './checkpoint-source';
import { AMDGPU_PAGES_PREFIX, ArchiveFile, CONTAINER_MANAGER_ANNOTATION, CriAnnotation, PAGES_PREFIX, type Engine } from './layout';

export interface ContainerConfigDump {
  id?: string;
  name?: string;
  rootfsImage?: string;
  rootfsImageRef?: string;
  rootfsImageName?: string;
  runtime?: string;
  createdTime?: string;
  checkpointedTime?: string;
}

export interface SpecDump {
  annotations?: Record<string, string>;
  mounts?: { destination?: string; type?: string; source?: string }[];
}

export interface ContainerInfo {
  name: string;
  engine: Engine;
  created: string;
  ip: string;
  mac: string;
  namespace: string;
  pod: string;
}

export interface ArchiveSizes {
  checkpointSize: number;
  pagesSize: number;
  amdgpuPagesSize: number;
  rootFsDiffSize: number;
}

export const CrioAnnotation = {
  metadata: 'io.kubernetes.cri-o.Metadata',
  ip0: 'io.kubernetes.cri-o.IP.0',
  created: 'io.kubernetes.cri-o.Created',
  podNamespace: 'io.kubernetes.pod.namespace',
  podName: 'io.kubernetes.pod.name',
} as const;

/** Go's `time.Format(time.RFC3339)` of a time parsed from `s` (RFC 3339 with any fraction): seconds, offset kept, zero offset as Z. */
export function goRfc3339(s: string | undefined): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(s ?? '');
  if (!m) return '0001-01-01T00:00:00Z';
  return `${m[1]}${m[2] === '+00:00' || m[2] === '-00:00' ? 'Z' : m[2]}`;
}

export function isZeroTime(s: string | undefined): boolean {
  return goRfc3339(s).startsWith('0001-01-01T00:00:00');
}

async function readJson<T>(src: CheckpointSource, name: string): Promise<T> {
  const buf = await src.readFile(name);
  if (!buf) throw new InvalidArgumentError(`checkpoint ${src.location} has no ${name}`);
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`checkpoint ${src.location}: ${name} is not valid JSON`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`checkpoint ${src.location}: ${name} is not a JSON object`);
  return v as T;
}

export const readConfigDump = (src: CheckpointSource) => readJson<ContainerConfigDump>(src, ArchiveFile.configDump);
export const readSpecDump = (src: CheckpointSource) => readJson<SpecDump>(src, ArchiveFile.specDump);

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** checkpointctl's getContainerInfo. */
export function containerInfo(config: ContainerConfigDump, spec: SpecDump): ContainerInfo {
  const a = spec.annotations && typeof spec.annotations === 'object' ? spec.annotations : {};
  const base = { ip: '', mac: '', namespace: '', pod: '' };
  switch (a[CONTAINER_MANAGER_ANNOTATION]) {
    case 'libpod':
      return { ...base, name: str(config.name), created: goRfc3339(config.createdTime), engine: 'Podman' };
    case 'cri-o': {
      let meta: { name?: unknown };
      try {
        meta = JSON.parse(a[CrioAnnotation.metadata] ?? '') as { name?: unknown };
      } catch {
        throw new InvalidArgumentError(`spec.dump: the ${CrioAnnotation.metadata} annotation is not JSON`);
      }
      return {
        name: str(meta?.name), created: str(a[CrioAnnotation.created]), engine: 'CRI-O', ip: str(a[CrioAnnotation.ip0]), mac: '',
        namespace: str(a[CrioAnnotation.podNamespace]), pod: str(a[CrioAnnotation.podName]),
      };
    }
    default:
      return {
        ...base, name: str(a[CriAnnotation.containerName]), created: goRfc3339(config.createdTime), engine: 'containerd',
        namespace: str(a[CriAnnotation.sandboxNamespace]), pod: str(a[CriAnnotation.sandboxName]),
      };
  }
}

/** checkpointctl's getArchiveSizes: regular files under checkpoint/, its pages-* and amdgpu-pages-*, and rootfs-diff.tar. */
export function archiveSizes(src: CheckpointSource): ArchiveSizes {
  const r: ArchiveSizes = { checkpointSize: 0, pagesSize: 0, amdgpuPagesSize: 0, rootFsDiffSize: 0 };
  const flat = src.kind === 'criu-images';
  for (const [name, size] of src.files) {
    const inCheckpoint = flat || name.startsWith(ArchiveFile.checkpointDir);
    if (inCheckpoint) {
      r.checkpointSize += size;
      const base = flat ? name : name.slice(ArchiveFile.checkpointDir.length + 1);
      if (base.startsWith(PAGES_PREFIX)) r.pagesSize += size;
      else if (base.startsWith(AMDGPU_PAGES_PREFIX)) r.amdgpuPagesSize += size;
    } else if (name.startsWith(ArchiveFile.rootfsDiffTar)) {
      r.rootFsDiffSize = size;
    }
  }
  return r;
}

/** What dump.log's first lines say: CRIU's version and the kernel it ran on. */
export async function criuDumpFacts(src: CheckpointSource): Promise<{ criuVersion?: string; kernel?: string }> {
  const size = src.files.get(ArchiveFile.dumpLog);
  if (size === undefined) return {};
  const buf = await src.readFile(ArchiveFile.dumpLog, 64 * 1024 * 1024);
  const head = (buf ?? Buffer.alloc(0)).subarray(0, 16384).toString('utf8');
  const version = /Version: (\S+)/.exec(head)?.[1];
  const kernel = /Running on \S+ (Linux [^\n]*)/.exec(head)?.[1]?.trim();
  return { criuVersion: version, kernel };
}
