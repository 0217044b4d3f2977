// The restored container's writable layer: a new active snapshot on the base image, with the
// checkpoint's file-system changes put in by containerd's Diff service — first the deletions
// (deleted.files, as an OCI layer of whiteouts), then rootfs-diff.tar (plain tar from Podman,
// CRI-O and ferry; a gzip OCI layer with whiteouts from containerd's CRI). rootfs-diff.tar is
// untrusted: containerd's applier is the one that already applies registry layers safely (no
// escaping names, links resolved inside the root), so ferry hands it the layer rather than
// writing into a mounted root file system itself.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { ArchiveFile, OciMediaType, WHITEOUT_PREFIX } from '../../format/layout';
import { readCheckpointJson } from '../../format/safe-read';
import { writeTar } from '../../format/tar-writer';
import { applyLayer, prepareSnapshot, writeContent, writeContentBytes, type Connection, type Mount } from '../containerd';

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

async function sha256OfFile(file: string): Promise<{ digest: string; size: number; head: Buffer }> {
  const hash = createHash('sha256');
  let size = 0;
  let head = Buffer.alloc(0);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    if (head.length < 4) head = Buffer.concat([head, b.subarray(0, 4 - head.length)]);
    hash.update(b);
    size += b.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size, head };
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

  const mounts = await prepareSnapshot(conn, snapshotter, key, parent, labels);
  const changes: RootfsChanges = { deleted: deleted.length, diffBytes: 0 };
  if (deleted.length > 0) {
    const layer = await whiteoutLayer(deleted);
    const d = await writeContentBytes(conn, layer);
    await applyLayer(conn, { mediaType: OciMediaType.layer, digest: d.digest, size: d.size, annotations: {} }, mounts);
  }
  if (diffStat && diffStat.size > 0) {
    const { digest, size, head } = await sha256OfFile(diffPath);
    const mediaType = diffMediaType(head);
    await writeContent(conn, fs.createReadStream(diffPath, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>, digest, size);
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
