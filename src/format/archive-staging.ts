// Stages an untrusted checkpoint archive (tar, tar+gzip, tar+zstd) into <bundle>/ctrd-restore
// so that runc/CRIU only ever read a directory we built ourselves.
//
// The policy (docs/checkpoint-safety.md has the threat model):
//  - whatever is at <bundle>/ctrd-restore is removed without being followed, then the
//    directory is created fresh, 0700, with a plain mkdir (which fails if something reappears);
//  - only regular files and directories are created; symlinks, hardlinks, devices, FIFOs and
//    unknown entry types are skipped, each with a warning naming the entry;
//  - a name that could leave the directory (absolute, a `..` component, NUL, through an
//    existing non-directory) refuses the WHOLE archive: such a name is never an accident;
//  - duplicate names refuse the archive (a later entry must not replace an earlier one);
//  - files are created O_CREAT|O_EXCL|O_NOFOLLOW, modes masked to 0755 (no setuid, setgid,
//    sticky, group/other write); ownership from the archive is ignored;
//  - on any failure the staging directory is removed before the error propagates.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { FerryError, InternalError, InvalidArgumentError, NotFoundError } from '../errors';
import { compressionOf, openArchiveStream, readTarEntries, TarEntry, TarEntryHeader, TarFormatError, ZSTD_WINDOW_LOG_MAX } from './tar-reader';
import { zstdDecompressFileInWorker } from './zstd-file-worker';
import { WarnLogger } from './warn-logger';
import { fileTypeName } from './file-type';
import { fileRandomAccess, RandomAccessIterator } from './random-access';
import { BackgroundWrites } from './background-writes';
import type { ChunkRetainer } from './chunk-leases';
import { createFileFrom } from '../sys/native';

export const STAGING_DIR_NAME = 'ctrd-restore';

export interface StageResult {
  dir: string;
  skipped: { name: string; type: string; reason: string }[];
}

export interface StageOptions {
  /** Refuse the archive once the regular-file bytes to write would exceed this. */
  maxTotalBytes?: number;
  /** Refuse archives with more entries than this. */
  maxEntries?: number;
  /** Called with the archive bytes read so far (compressed bytes, for a progress bar). */
  onRead?: (bytes: number) => void;
}

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = fs.constants;
const FILE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const MAX_COMPONENT_BYTES = 255;
/**
 * In an uncompressed archive read from a file, bodies at least this long are copied from the
 * archive's fd inside the kernel by one threadpool job per file (createFileFrom), never read into
 * JavaScript; the tar reader skips over them (it skips bodies from 256 KiB without reading).
 * Smaller ones are already in the chunk the reader read for their header: written from there.
 */
const KERNEL_COPY_MIN = 256 * 1024;
/** Bodies at least this long that must be read (zstd or streamed archives; not gzip) are written in the background. */
const BACKGROUND_WRITE_MIN = 256 * 1024;
/** A bulk body's bytes handed to the threadpool and not yet written, at most. */
const MAX_PENDING_WRITE_BYTES = 4 << 20;
/** tar+zstd archive files at least this large are decompressed on a worker thread. */
const ZSTD_WORKER_MIN = 8 << 20;
/** Kernel copies in flight at once: libuv's default threadpool size (copies run there). */
const MAX_COPIES_IN_FLIGHT = 4;

/** An uncompressed archive file the stager can copy bodies from by offset. */
interface ArchiveFd {
  fd: number;
  size: number;
}
const MAX_PATH_BYTES = 4096;

/** The staging directory for a bundle. */
export function stagingDirFor(bundleDir: string): string {
  return path.join(bundleDir, STAGING_DIR_NAME);
}

/**
 * Decides how a checkpoint path given to Create is treated: a regular file is an archive, a
 * directory is an unpacked checkpoint; anything else (symlink, FIFO, socket, device) is refused
 * rather than followed or opened (opening a FIFO would block the shim).
 */
export async function isArchiveFile(p: string): Promise<boolean> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p); // one call on the restore's path: not worth a threadpool round trip
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`checkpoint ${p} does not exist`);
    throw err;
  }
  if (st.isFile()) return true;
  if (st.isDirectory()) return false;
  throw new InvalidArgumentError(`checkpoint ${p} is a ${fileTypeName(st)}, expected a directory or an archive file`);
}

/**
 * One recursive removal of <bundle>/ctrd-restore. fs.rm lstat()s every path and unlinks
 * symlinks rather than descending into them, so a planted symlink (at the top or inside) is
 * removed itself and its target is untouched. Missing is fine (idempotent cleanup).
 */
export async function removeStagingDir(bundleDir: string): Promise<void> {
  if (!bundleDir) throw new InvalidArgumentError('removeStagingDir: empty bundle path');
  await fs.promises.rm(stagingDirFor(bundleDir), { recursive: true, force: true, maxRetries: 2 });
}

type NameCheck = { kind: 'root' } | { kind: 'path'; parts: string[] };

/**
 * Normalises an entry name to components below the staging dir. `.` and empty components
 * (`./a`, `a//b`, trailing `/`) are dropped; anything that could point elsewhere is refused.
 */
function checkEntryName(name: string): NameCheck | { kind: 'refuse'; reason: string } {
  if (name === '') return { kind: 'refuse', reason: 'empty name' };
  if (name.includes('\0')) return { kind: 'refuse', reason: 'name contains a NUL byte' };
  if (name.startsWith('/')) return { kind: 'refuse', reason: 'absolute name' };
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) return { kind: 'refuse', reason: 'name too long' };
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  for (const c of parts) {
    if (c === '..') return { kind: 'refuse', reason: 'name has a ".." component' };
    if (Buffer.byteLength(c) > MAX_COMPONENT_BYTES) return { kind: 'refuse', reason: 'name component too long' };
  }
  return parts.length === 0 ? { kind: 'root' } : { kind: 'path', parts };
}

/** Only permission bits a checkpoint legitimately needs: no setuid/setgid/sticky, no g/o write. */
const fileMode = (mode: number): number => mode & 0o755;
/** Directories keep owner rwx so staging can always write into them. */
const dirMode = (mode: number): number => (mode & 0o755) | 0o700;

class Stager {
  readonly skipped: StageResult['skipped'] = [];
  private readonly seen = new Set<string>();
  /** Directories (relative paths) that we created or verified; only we write in `root`. */
  private readonly knownDirs = new Set<string>(['']);
  private totalBytes = 0;
  private entries = 0;
  /** Kernel copies running (uncompressed archive files only); each settles without rejecting. */
  private readonly copies = new Set<Promise<void>>();
  /** The first failed kernel copy's error, thrown at the next entry (or at the end). */
  private copyError: unknown;
  /** Set while an uncompressed archive file is staged: bodies are copied from it by offset. */
  private source?: ArchiveFd;
  /** Bulk bodies that must be read are written through the threadpool (BackgroundWrites). */
  private backgroundWrites = true;
  /** onRead's high-water mark on the random-access path (copies finish out of order). */
  private readUpTo = 0;
  /** Set while the zstd worker's chunks are staged: their memory is reused once every write of them is done. */
  private chunks?: ChunkRetainer;

  constructor(
    private readonly archive: string,
    private readonly root: string,
    private readonly log: WarnLogger,
    private readonly opts: StageOptions,
  ) {}

  private refuse(name: string, reason: string): InvalidArgumentError {
    return new InvalidArgumentError(
      `checkpoint archive ${this.archive}: entry ${JSON.stringify(name)} refused: ${reason}`,
    );
  }

  async run(): Promise<void> {
    const fh = await openArchive(this.archive);
    try {
      const { size } = await fh.stat();
      const head = Buffer.alloc(4);
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      const compression = compressionOf(head.subarray(0, bytesRead));
      if (compression === 'none') {
        // Uncompressed: headers and small files through pread chunks, bulk bodies in the kernel.
        this.source = { fd: fh.fd, size };
        await this.stageEntries(readTarEntries(new RandomAccessIterator(fileRandomAccess(fh, size))));
        return;
      }
      if (compression === 'zstd' && size >= ZSTD_WORKER_MIN) {
        // Large zstd: decompressed on a worker thread, so that the main thread only parses and
        // hands writes to the threadpool (below that size a worker's start-up costs more).
        const zstd = zstdDecompressFileInWorker(fh.fd, ZSTD_WINDOW_LOG_MAX, this.opts.onRead);
        this.chunks = zstd.chunks;
        try {
          // Small bodies are written synchronously from the reader's slices, before the next
          // call to the reader; bulk bodies' background writes retain their chunks.
          await this.stageEntries(readTarEntries(zstd.stream, { onChunkDone: (chunk) => zstd.chunks.readerDone(chunk) }));
        } finally {
          await zstd.close();
        }
        return;
      }
      const input = fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false });
      try {
        await this.runStream(this.opts.onRead ? counted(input, this.opts.onRead) : input);
      } finally {
        input.destroy();
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** Stages the entries of a (possibly compressed) tar stream. */
  async runStream(input: AsyncIterable<Buffer>): Promise<void> {
    const { compression, stream } = await openArchiveStream(input instanceof Readable ? input : Readable.from(input, { objectMode: false }));
    // gunzip already runs in the threadpool, in 64 KiB steps: writes queued there too only
    // added round trips (measured: more CPU and wall than writing from the main thread).
    this.backgroundWrites = compression !== 'gzip';
    await this.stageEntries(readTarEntries(stream));
  }

  /** Every entry in turn; kernel copies still running are waited for whatever happens. */
  private async stageEntries(entries: AsyncIterable<TarEntry>): Promise<void> {
    try {
      for await (const entry of entries) {
        this.throwCopyError();
        await this.entry(entry.header, entry.body, entry.dataOffset);
      }
      await Promise.all(this.copies);
      this.throwCopyError();
    } finally {
      // Never leave a copy running: the caller removes the staging dir next, on failure.
      await Promise.all(this.copies);
    }
  }

  private throwCopyError(): void {
    if (this.copyError !== undefined) throw this.copyError;
  }

  private reportRead(upTo: number): void {
    if (!this.opts.onRead || upTo <= this.readUpTo) return;
    this.readUpTo = upTo;
    this.opts.onRead(upTo);
  }

  private async entry(h: TarEntryHeader, body: () => AsyncGenerator<Buffer>, dataOffset: number): Promise<void> {
    if (this.source) this.reportRead(dataOffset);
    this.entries++;
    if (this.opts.maxEntries !== undefined && this.entries > this.opts.maxEntries) {
      throw this.refuse(h.name, `archive has more than ${this.opts.maxEntries} entries`);
    }
    // Name checks come before type checks: an escaping name is hostile whatever its type.
    const check = checkEntryName(h.name);
    if (check.kind === 'refuse') throw this.refuse(h.name, check.reason);
    const rel = check.kind === 'root' ? '.' : check.parts.join('/');
    // `.` may legitimately appear more than once (it is ignored below); any other repeat is a
    // second entry trying to replace the first.
    if (check.kind === 'path') {
      if (this.seen.has(rel)) throw this.refuse(h.name, `duplicate entry (${rel} already in the archive)`);
      this.seen.add(rel);
    }

    if (h.type !== 'file' && h.type !== 'directory') {
      const type = h.type === 'other' ? `unsupported type ${JSON.stringify(h.typeflag)}` : h.type;
      const reason = 'only regular files and directories are unpacked';
      this.skipped.push({ name: h.name, type, reason });
      this.log.warn(`checkpoint archive ${this.archive}: skipped ${type} entry ${JSON.stringify(h.name)}: ${reason}`, {
        archive: this.archive, entry: h.name, type, linkname: h.linkname || undefined,
      });
      return;
    }
    if (check.kind === 'root') {
      // `.` / `./` describe the staging dir itself: it stays ours (0700), whatever the header says.
      if (h.type === 'directory') {
        this.log.debug?.(`checkpoint archive ${this.archive}: ignoring entry for the top directory`, { entry: h.name });
        return;
      }
      throw this.refuse(h.name, 'a regular file cannot replace the staging directory');
    }

    const parent = await this.ensureParents(h.name, check.parts);
    const target = path.join(parent, check.parts[check.parts.length - 1]);
    if (h.type === 'directory') await this.makeDir(h.name, rel, target, dirMode(h.mode));
    else if (this.source && h.size >= KERNEL_COPY_MIN) await this.copyFile(h, target, this.source, dataOffset);
    else await this.writeFile(h, target, body);
  }

  /** Creates or verifies each parent component (never following a symlink). */
  private async ensureParents(name: string, parts: string[]): Promise<string> {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel === '' ? parts[i] : `${rel}/${parts[i]}`;
      if (this.knownDirs.has(rel)) continue;
      const abs = path.join(this.root, rel);
      try {
        fs.mkdirSync(abs, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const st = fs.lstatSync(abs);
        if (!st.isDirectory()) throw this.refuse(name, `parent ${rel} is a ${fileTypeName(st)}, not a directory`);
      }
      this.knownDirs.add(rel);
    }
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  private async makeDir(name: string, rel: string, abs: string, mode: number): Promise<void> {
    try {
      fs.mkdirSync(abs, { mode: 0o700 });
    } catch (err) {
      // EEXIST is fine only for a directory we created implicitly as some earlier file's parent.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !this.knownDirs.has(rel)) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw this.refuse(name, 'conflicts with an earlier entry');
        throw err;
      }
    }
    this.knownDirs.add(rel);
    // chmod through an fd opened O_NOFOLLOW|O_DIRECTORY: exactly the directory we made.
    const dir = fs.openSync(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try {
      fs.fchmodSync(dir, mode);
    } finally {
      fs.closeSync(dir);
    }
  }

  private countBytes(h: TarEntryHeader): void {
    if (this.opts.maxTotalBytes !== undefined && this.totalBytes + h.size > this.opts.maxTotalBytes) {
      throw this.refuse(h.name, `unpacked size would exceed the limit of ${this.opts.maxTotalBytes} bytes`);
    }
    this.totalBytes += h.size;
  }

  /**
   * A bulk body of an uncompressed archive file: copied from the archive's fd at its offset by
   * one threadpool job (open O_EXCL|O_NOFOLLOW, in-kernel copy, fchmod, close), started here and
   * not waited for, so that up to MAX_COPIES_IN_FLIGHT copies overlap with reading the next
   * headers and writing small files. The name, type, duplicate and parent checks are all done
   * (by entry()) before it starts; a body reaching past the archive's end is refused first.
   */
  private async copyFile(h: TarEntryHeader, abs: string, source: ArchiveFd, offset: number): Promise<void> {
    this.countBytes(h);
    const truncated = () => new TarFormatError(`truncated archive: body of ${JSON.stringify(h.name)} (${h.size} bytes declared)`);
    if (offset + h.size > source.size) throw truncated();
    while (this.copies.size >= MAX_COPIES_IN_FLIGHT) await Promise.race(this.copies);
    const copy = createFileFrom(abs, fileMode(h.mode), source.fd, offset, h.size).then(
      ({ copied }) => {
        // The archive shrank while it was read: as truncated as if it had been short at the start.
        if (copied !== h.size) throw truncated();
        this.reportRead(offset + h.size);
      },
    ).catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      const conflict = (err as { syscall?: string }).syscall === 'open' && (code === 'EEXIST' || code === 'ELOOP');
      this.copyError ??= conflict ? this.refuse(h.name, 'conflicts with an earlier entry') : err;
    }).finally(() => this.copies.delete(copy));
    this.copies.add(copy);
  }

  private async writeFile(h: TarEntryHeader, abs: string, body: () => AsyncGenerator<Buffer>): Promise<void> {
    this.countBytes(h);
    // Synchronous calls: each async fs call is a round trip through libuv's thread pool, and a
    // CRIU checkpoint is thousands of small files — four round trips per file (open, write,
    // fchmod, close) left staging waiting on the pool most of the time, at ~20 % of GNU tar's
    // speed. The reads stay asynchronous (they overlap with these writes), and a write blocks
    // the event loop for at most one chunk (≤ 1 MiB into the page cache).
    let fd: number;
    try {
      fd = fs.openSync(abs, FILE_FLAGS, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ELOOP') throw this.refuse(h.name, 'conflicts with an earlier entry');
      throw err;
    }
    try {
      if (this.backgroundWrites && h.size >= BACKGROUND_WRITE_MIN) {
        // A bulk body (from a decompressor or a stream): its chunks are written in the threadpool
        // while the main thread decompresses and parses on.
        const writes = new BackgroundWrites(fd, MAX_PENDING_WRITE_BYTES, this.chunks);
        try {
          for await (const chunk of body()) await writes.write(chunk);
          await writes.flush();
        } finally {
          await writes.settle();
        }
      } else {
        for await (const chunk of body()) {
          let off = 0;
          while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
        }
      }
      // Set the mode explicitly (umask must not decide it) and only after the content is in.
      fs.fchmodSync(fd, fileMode(h.mode));
    } finally {
      fs.closeSync(fd);
    }
  }
}

async function* counted(input: AsyncIterable<Buffer>, onRead: (bytes: number) => void): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of input) {
    n += chunk.length;
    onRead(n);
    yield chunk;
  }
}

/** Opens the archive itself without following a symlink or blocking on a FIFO. */
async function openArchive(archive: string): Promise<fs.promises.FileHandle> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(archive, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`checkpoint archive ${archive} does not exist`);
    if (code === 'ELOOP') throw new InvalidArgumentError(`checkpoint archive ${archive} is a symlink; refusing to follow it`);
    throw err;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new InvalidArgumentError(`checkpoint archive ${archive} is a ${fileTypeName(st)}, not a regular file`);
  }
  return fh;
}

/** Creates <bundle>/ctrd-restore fresh: mkdir (never follows, fails if anything is there), then fchmod 0700. */
async function createStagingDir(dir: string): Promise<void> {
  try {
    await fs.promises.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FailedToCreate(`staging directory ${dir} reappeared after removal; refusing to reuse it`);
    }
    throw err;
  }
  const fh = await fs.promises.open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new FailedToCreate(`staging directory ${dir} is not owned by us`);
    }
    await fh.chmod(0o700);
  } finally {
    await fh.close();
  }
}

class FailedToCreate extends InternalError {}

/**
 * Unpacks `archivePath` into a fresh <bundleDir>/ctrd-restore and returns it with the list of
 * skipped entries. Streaming throughout: memory does not grow with the archive.
 * Errors: InvalidArgumentError for bad or hostile content (names the archive and the entry),
 * NotFoundError if the archive is missing, InternalError for local I/O failures. Whatever the
 * error, the staging directory is gone when it is thrown.
 */
export async function stageCheckpointArchive(
  archivePath: string,
  bundleDir: string,
  log: WarnLogger,
  opts: StageOptions = {},
): Promise<StageResult> {
  return stageWith(archivePath, bundleDir, log, opts, (stager) => stager.run());
}

/**
 * As stageCheckpointArchive, for an archive that arrives as a byte stream (a checkpoint image's
 * layer read from containerd's content store); `label` names it in errors.
 */
export async function stageCheckpointStream(
  input: AsyncIterable<Buffer>,
  label: string,
  bundleDir: string,
  log: WarnLogger,
  opts: StageOptions = {},
): Promise<StageResult> {
  return stageWith(label, bundleDir, log, opts, (stager) => stager.runStream(input));
}

/** A fresh staging dir, filled by `fill`; removed again, whatever the error, if that fails. */
async function stageWith(
  label: string,
  bundleDir: string,
  log: WarnLogger,
  opts: StageOptions,
  fill: (stager: Stager) => Promise<void>,
): Promise<StageResult> {
  const dir = stagingDirFor(bundleDir);
  await removeStagingDir(bundleDir);
  const stager = new Stager(label, dir, log, opts);
  try {
    await createStagingDir(dir);
    await fill(stager);
  } catch (err) {
    await removeStagingDir(bundleDir);
    throw asFerryError(err, label);
  }
  return { dir, skipped: stager.skipped };
}

function asFerryError(err: unknown, archive: string): FerryError {
  if (err instanceof TarFormatError) {
    return new InvalidArgumentError(`checkpoint archive ${archive}: ${err.message}`);
  }
  if (err instanceof FerryError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(`staging checkpoint archive ${archive}: ${message}`, { cause: err });
}
