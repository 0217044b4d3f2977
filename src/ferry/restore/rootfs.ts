// The restored container's writable layer: a new active snapshot on the base image, with the
// checkpoint's file-system changes put in by containerd's Diff service — first the deletions
// (deleted.files, as an OCI layer of whiteouts), then rootfs-diff.tar (plain tar from Podman,
// CRI-O and ferry; a gzip OCI layer with whiteouts from containerd's CRI). rootfs-diff.tar is
// untrusted: containerd's applier is the one that already applies registry layers safely (no
// escaping names, links resolved inside the root), so ferry hands it the layer rather than
// writing into a mounted root file system itself.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { ArchiveFile, OciMediaType, WHITEOUT_PREFIX } from '../../format/layout';
import { readCheckpointJson } from '../../format/safe-read';
import { writeTar } from '../../format/tar-writer';
import { applyLayer, prepareSnapshot, writeContentBytes, writeContentStream, type Connection, type Mount } from '../containerd';

export interface RootfsChanges {
  /** Paths removed (from deleted.files). */
  deleted: number;
  /** Bytes of rootfs-diff.tar applied (0 when the archive has none). */
  diffBytes: number;
  diffMediaType?: string;
}

const MAX_DELETED_FILES_BYTES = 16 * 1024 * 1024;
const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** deleted.files → relative paths (`/etc/group` → `etc/group`); anything that could name a path outside the root refuses the checkpoint. */
export function parseDeletedFiles(v: unknown): string[] {
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${ArchiveFile.deletedFiles} is not a JSON array`);
  const out = new Set<string>();
  for (const p of v) {
    if (typeof p !== 'string' || p === '' || p.includes('\0')) throw new InvalidArgumentError(`${ArchiveFile.deletedFiles}: ${JSON.stringify(p)} is not a path`);
    const parts = p.split('/').filter((c) => c !== '' && c !== '.');
    if (parts.includes('..')) throw new InvalidArgumentError(`${ArchiveFile.deletedFiles}: ${JSON.stringify(p)} has a ".." component`);
    if (parts.length === 0) throw new InvalidArgumentError(`${ArchiveFile.deletedFiles}: ${JSON.stringify(p)} names the root directory`);
    if (parts.some((c) => c.startsWith(WHITEOUT_PREFIX))) throw new InvalidArgumentError(`${ArchiveFile.deletedFiles}: ${JSON.stringify(p)} is a whiteout name`);
    out.add(parts.join('/'));
  }
  return [...out].sort();
}

/** An OCI layer (plain tar) whose whiteouts delete `paths`. */
export async function whiteoutLayer(paths: string[]): Promise<Buffer> {
  const entries = paths.map((p) => {
    const dir = path.posix.dirname(p);
    const name = `${WHITEOUT_PREFIX}${path.posix.basename(p)}`;
    return { name: dir === '.' ? name : `${dir}/${name}`, type: 'file' as const, size: 0, mode: 0o644 };
  });
  const chunks: Buffer[] = [];
  for await (const c of writeTar(entries, { deterministic: true })) chunks.push(c);
  return Buffer.concat(chunks);
}

/** The layer media type of a rootfs-diff.tar, from its first bytes. */
export function diffMediaType(head: Buffer): string {
  if (head.subarray(0, 2).equals(GZIP)) return OciMediaType.layerGzip;
  if (head.subarray(0, 4).equals(ZSTD)) return OciMediaType.layerZstd;
  return OciMediaType.layer;
}

/** The first bytes of a file (fewer when it is shorter). */
async function headOf(file: string, n: number): Promise<Buffer> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const b = Buffer.alloc(n);
    const { bytesRead } = await fh.read(b, 0, n, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** rootfs-diff.tar into the content store, read once (hashed while it is written). */
async function writeDiff(conn: Connection, diffPath: string, key: string): Promise<{ mediaType: string; digest: string; size: number }> {
  const mediaType = diffMediaType(await headOf(diffPath, 4));
  const ref = `ferry-restore-diff-${key}-${randomBytes(6).toString('hex')}`;
  const { digest, size } = await writeContentStream(conn, fs.createReadStream(diffPath, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>, { ref });
  return { mediaType, digest, size };
}

/** The whiteouts of deleted.files into the content store, as a layer. */
async function writeWhiteouts(conn: Connection, deleted: string[]): Promise<{ digest: string; size: number }> {
  return writeContentBytes(conn, await whiteoutLayer(deleted));
}

/**
 * Prepares snapshot `key` on `parent` (a chain id) and puts the checkpoint's changes in it.
 * `stageDir` is the unpacked archive (ferry's own copy: regular files and directories only).
 * The caller owns the snapshot (and removes it if anything later fails) and calls this under a
 * lease, so the layers written to the content store live until the container exists.
 */
export async function prepareRestoredRootfs(conn: Connection, snapshotter: string, key: string, parent: string, stageDir: string, labels: Record<string, string>): Promise<{ mounts: Mount[]; changes: RootfsChanges }> {
  // Read and check deleted.files before anything is created.
  let deleted: string[] = [];
  try {
    deleted = parseDeletedFiles(await readCheckpointJson(stageDir, ArchiveFile.deletedFiles, { maxBytes: MAX_DELETED_FILES_BYTES }));
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const diffPath = path.join(stageDir, ArchiveFile.rootfsDiffTar);
  const diffStat = await fs.promises.lstat(diffPath).catch(() => undefined);
  if (diffStat && !diffStat.isFile()) throw new InvalidArgumentError(`${ArchiveFile.rootfsDiffTar} is not a regular file`);

  // The snapshot and the two layers' blobs are independent: they are made side by side (under the
  // caller's lease); the layers are then applied in order, deletions first.
  const [prepared, whiteouts, diff] = await Promise.allSettled([
    prepareSnapshot(conn, snapshotter, key, parent, labels),
    deleted.length > 0 ? writeWhiteouts(conn, deleted) : undefined,
    diffStat && diffStat.size > 0 ? writeDiff(conn, diffPath, key) : undefined,
  ]);
  for (const r of [prepared, whiteouts, diff]) if (r.status === 'rejected') throw r.reason;
  const mounts = (prepared as PromiseFulfilledResult<Mount[]>).value;
  const w = (whiteouts as PromiseFulfilledResult<{ digest: string; size: number } | undefined>).value;
  const d = (diff as PromiseFulfilledResult<{ mediaType: string; digest: string; size: number } | undefined>).value;
  const changes: RootfsChanges = { deleted: deleted.length, diffBytes: 0 };
  if (w) {
    await applyLayer(conn, { mediaType: OciMediaType.layer, digest: w.digest, size: w.size, annotations: {} }, mounts);
  }
  if (d) {
    const { mediaType, digest, size } = d;
    try {
      await applyLayer(conn, { mediaType, digest, size, annotations: {} }, mounts);
    } catch (err) {
      const why = (err as { details?: string }).details ?? (err as Error).message;
      throw new InvalidArgumentError(`${ArchiveFile.rootfsDiffTar} could not be applied: ${why}`);
    }
    changes.diffBytes = size;
    changes.diffMediaType = mediaType;
  }
  return { mounts, changes };
}
