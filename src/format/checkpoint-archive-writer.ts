// Writes a checkpoint archive in the Kubernetes layout (the one containerd's CRI, CRI-O and
// Podman share through checkpointctl's file names; checkpoint-formats.md §1): metadata first
// (config.dump, spec.dump, status.dump), so a reader that only wants them can stop early, then
// the CRIU images under checkpoint/, the writable layer (rootfs-diff.tar + deleted.files) and
// CRIU's log and statistics. The same bytes, uncompressed, are the layer of a checkpoint image.
//
// The entries are built first (files are stat'ed once), so the archive's exact uncompressed
// size is known before a byte is written: progress can show a real "time left".
import { Readable, Transform, TransformCallback } from 'node:stream';
import { createHash, Hash } from 'node:crypto';
import { pipeline } from 'node:stream';
import { createCompressor, ArchiveCompression, CompressorOptions } from './compression';
import { ArchiveFile } from './layout';
import { directoryEntries, encodeTarHeader, fileEntry, TarWriteEntry, TarWriteOptions, writeTar } from './tar-writer';

export interface CheckpointArchiveParts {
  /** config.dump: checkpointctl's ContainerConfig (JSON). */
  configDump: unknown;
  /** spec.dump: the container's OCI runtime spec (JSON). */
  specDump: unknown;
  /** status.dump: the CRI ContainerStatus containerd's CRI needs to restore (JSON). */
  statusDump?: unknown;
  /** The CRIU image directory (flat: *.img, descriptors.json); archived as checkpoint/. */
  imagesDir: string;
  /** A plain tar of the writable layer's changes (rootfs-diff.ts). */
  rootfsDiffTar?: string;
  /** Paths removed from the image's filesystem; written as deleted.files when given. */
  deletedFiles?: string[];
  /** CRIU's dump log, stats-dump and the container's log file, when there are such files. */
  dumpLog?: string;
  statsDump?: string;
  containerLog?: string;
  /** mtime of the files made from JSON (default now). */
  time?: Date;
}

/** Regular files and directories of the archive: root-only, as every engine writes them. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** The archive's entries, in order. Files are stat'ed now and read when the archive is written. */
export async function checkpointArchiveEntries(p: CheckpointArchiveParts): Promise<TarWriteEntry[]> {
  const mtime = Math.floor((p.time ?? new Date()).getTime() / 1000);
  const owned = { uid: 0, gid: 0, uname: '', gname: '' };
  const meta = (name: string, value: unknown): TarWriteEntry => {
    const body = json(value);
    return { name, type: 'file', size: body.length, mode: FILE_MODE, mtime, body, ...owned };
  };
  const entries: TarWriteEntry[] = [meta(ArchiveFile.configDump, p.configDump), meta(ArchiveFile.specDump, p.specDump)];
  if (p.statusDump !== undefined) entries.push(meta(ArchiveFile.statusDump, p.statusDump));
  // checkpointctl requires the checkpoint/ directory entry itself, not only files below it.
  for await (const e of directoryEntries(p.imagesDir, ArchiveFile.checkpointDir, owned)) {
    entries.push({ ...e, mode: e.type === 'directory' ? DIR_MODE : FILE_MODE });
  }
  const file = async (path: string | undefined, name: string) => {
    if (path !== undefined) entries.push(await fileEntry(path, name, { mode: FILE_MODE, ...owned }));
  };
  await file(p.rootfsDiffTar, ArchiveFile.rootfsDiffTar);
  if (p.deletedFiles !== undefined) entries.push(meta(ArchiveFile.deletedFiles, p.deletedFiles));
  await file(p.dumpLog, ArchiveFile.dumpLog);
  await file(p.statsDump, ArchiveFile.statsDump);
  await file(p.containerLog, ArchiveFile.containerLog);
  return entries;
}

/** Exact length of the uncompressed tar writeTar makes of `entries`. */
export function tarSize(entries: TarWriteEntry[], opts: TarWriteOptions = {}): number {
  let total = 1024; // two zero blocks
  for (const e of entries) {
    const size = e.type === 'file' ? (e.size ?? 0) : 0;
    total += encodeTarHeader({ ...e, size }, opts).length + size + ((512 - (size % 512)) % 512);
  }
  return total;
}

/** sha256 and length of the bytes flowing through (an image layer needs both, compressed and not). */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private result?: string;

  constructor(private readonly onBytes?: (bytes: number) => void) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    done(null, chunk);
  }

  /** `sha256:<hex>` once the stream has ended. */
  digest(): string {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

export interface ArchiveStreamOptions extends CompressorOptions, TarWriteOptions {
  compression: ArchiveCompression;
  /** Uncompressed bytes produced so far (for progress against tarSize()). */
  onProgress?: (bytes: number) => void;
}

export interface ArchiveStream {
  /** The compressed archive. */
  stream: Readable;
  /** Digest and length of the uncompressed tar (an image layer's diff_id), valid after the end. */
  uncompressed: DigestStream;
}

/**
 * The archive as a compressed byte stream. Errors of any stage (a file that changed size, a
 * compressor failure) destroy the stream, so the consumer's pipeline fails with them.
 */
export function archiveStream(entries: TarWriteEntry[], opts: ArchiveStreamOptions): ArchiveStream {
  const uncompressed = new DigestStream(opts.onProgress);
  const compressor = createCompressor(opts.compression, opts);
  const stream = pipeline(Readable.from(writeTar(entries, opts), { objectMode: false }), uncompressed, compressor, () => {
    /* errors surface through the returned stream */
  });
  return { stream, uncompressed };
}
