// containerd.services.transfer.v1.Transfer: containerd itself pulls from and pushes to
// registries (its resolver, its TLS trust, its content store), so ferry needs no registry client
// of its own. Progress comes back on a Streaming side channel as transfer.Progress messages, one
// per blob, which are summed here into bytes done / bytes known.
//
// What containerd accepts differs by version (checked here, see docs/ferry-cli.md "Registries"):
// 1.7.24 speaks only HTTPS to a registry and reads no hosts config from a Transfer request;
// 2.1 honours RegistryResolver.host_dir (a hosts.toml directory) and default_scheme.
import { TransferDefinition } from '../../../api/gen/containerd/services/transfer/v1/transfer';
import { ImageStore } from '../../../api/gen/containerd/types/transfer/imagestore';
import { Progress as ProgressMessage } from '../../../api/gen/containerd/types/transfer/progress';
import { OCIRegistry } from '../../../api/gen/containerd/types/transfer/registry';
import type { Platform } from '../../../api/gen/containerd/types/platform';
import type { Any } from '../../../api/gen/google/protobuf/any';
import type { Connection } from './connection';
import { openStream, streamId } from './streaming';

export const TransferTypeUrl = {
  imageStore: 'containerd.types.transfer.ImageStore',
  registry: 'containerd.types.transfer.OCIRegistry',
  progress: 'containerd.types.transfer.Progress',
} as const;

export interface TransferProgress {
  /** Bytes transferred so far, over all blobs seen. */
  done: number;
  /** Sum of the sizes of all blobs seen so far (grows as containerd discovers them). */
  total: number;
  /** The latest event text ("downloading", "uploading", "complete", "Pushing to …"). */
  event: string;
}

export interface RegistryOptions {
  /** containerd 2.x: directory of hosts.toml files (certs.d layout) for the registry. */
  hostDir?: string;
  /** containerd 2.x: "http" to speak plain HTTP to the registry (default https). */
  defaultScheme?: string;
  /** Extra HTTP headers for every registry request. */
  headers?: Record<string, string>;
}

export interface TransferOptions extends RegistryOptions {
  onProgress?: (p: TransferProgress) => void;
  /** Deadline of the whole transfer in ms (default 2 hours: checkpoint images are big). */
  timeoutMs?: number;
}

export interface PullOptions extends TransferOptions {
  /** Name to store the image under (default: the reference). */
  imageName?: string;
  /** Platform to fetch and unpack (default: this host's). */
  platform?: Partial<Platform>;
  /** Snapshotter to unpack into; '' = do not unpack. Default overlayfs. */
  snapshotter?: string;
  labels?: Record<string, string>;
}

const DEFAULT_TIMEOUT_MS = 2 * 3600 * 1000;

/** The host's platform in OCI terms (GOARCH names). */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch, variant: process.arch === 'arm64' ? 'v8' : '', osVersion: '' };
}

function registryAny(reference: string, o: RegistryOptions): Any {
  const msg = OCIRegistry.fromPartial({
    reference,
    resolver: { headers: o.headers ?? {}, hostDir: o.hostDir ?? '', defaultScheme: o.defaultScheme ?? '' },
  });
  return { typeUrl: TransferTypeUrl.registry, value: OCIRegistry.encode(msg).finish() };
}

function imageStoreAny(store: Partial<ImageStore>): Any {
  return { typeUrl: TransferTypeUrl.imageStore, value: ImageStore.encode(ImageStore.fromPartial(store)).finish() };
}

/** Reads Progress messages from the stream until it ends, summing per blob name. */
async function followProgress(call: Awaited<ReturnType<typeof openStream>>, onProgress: (p: TransferProgress) => void): Promise<void> {
  const blobs = new Map<string, { done: number; total: number }>();
  for (;;) {
    let msg: Any | undefined;
    try {
      msg = await call.read();
    } catch {
      return; // cancelled when the transfer ended: nothing more to show
    }
    if (msg === undefined) return;
    if (msg.typeUrl !== TransferTypeUrl.progress && !msg.typeUrl.endsWith(`/${TransferTypeUrl.progress}`)) continue;
    const p = ProgressMessage.decode(msg.value);
    if (p.name !== '' && p.total > 0) blobs.set(p.name, { done: Math.min(p.progress, p.total), total: p.total });
    let done = 0;
    let total = 0;
    for (const b of blobs.values()) { done += b.done; total += b.total; }
    onProgress({ done, total, event: p.event });
  }
}

async function transfer(conn: Connection, source: Any, destination: Any, o: TransferOptions): Promise<void> {
  let progress: { call: Awaited<ReturnType<typeof openStream>>; followed: Promise<void> } | undefined;
  let progressStream = '';
  if (o.onProgress) {
    progressStream = streamId('progress');
    const call = await openStream(conn, progressStream);
    progress = { call, followed: followProgress(call, o.onProgress) };
  }
  try {
    await conn.unary(TransferDefinition, 'transfer', { source, destination, options: { progressStream } }, { timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  } finally {
    if (progress) {
      progress.call.end();
      progress.call.cancel();
      await progress.followed;
    }
  }
}

/** Pushes image `imageName` of containerd's image store to `reference` (a registry name:tag). */
export async function pushImage(conn: Connection, imageName: string, reference: string, o: TransferOptions = {}): Promise<void> {
  await transfer(conn, imageStoreAny({ name: imageName }), registryAny(reference, o), o);
}

/** Pulls `reference` into containerd's image store (and unpacks it for the platform). */
export async function pullImage(conn: Connection, reference: string, o: PullOptions = {}): Promise<void> {
  const platform = { ...hostPlatform(), ...(o.platform ?? {}) };
  const snapshotter = o.snapshotter ?? 'overlayfs';
  const store: Partial<ImageStore> = {
    name: o.imageName ?? reference,
    labels: o.labels ?? {},
    platforms: [platform],
    unpacks: snapshotter === '' ? [] : [{ platform, snapshotter }],
  };
  await transfer(conn, registryAny(reference, o), imageStoreAny(store), o);
}
