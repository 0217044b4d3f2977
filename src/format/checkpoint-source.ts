// Opens a checkpoint for reading without restoring it: a checkpoint archive (tar, tar+gzip,
// tar+zstd: ferry's, containerd CRI's, Podman's, CRI-O's), an unpacked archive directory, or a
// bare CRIU image directory (and, through checkpoint-image.ts, the archive in a checkpoint
// image's layer). An archive is never unpacked to disk: one pass keeps the small files in memory
// (bounded) and notes the size of every entry. The pages images are read later, only for the
// byte ranges asked for (command lines, environments) or streamed for a memory dump: where the
// archive is uncompressed and its input has random access, in place (the first pass skipped
// over them without reading); otherwise in one more streamed pass. Names are normalised as
// checkpointctl does (a leading `./` dropped); only regular files are read — links, devices and
// FIFOs in an archive are listed as skipped and never followed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError } from '../errors';
import { fileTypeName } from './file-type';
import { AMDGPU_PAGES_PREFIX, ArchiveFile, PAGES_PREFIX } from './layout';
import { compressionOf, openArchiveStream, readTarEntries, TarFormatError, type ArchiveCompression } from './tar-reader';
import { fileRandomAccess, LARGE_READ, RandomAccessIterator, type RandomAccess } from './random-access';

export type { RandomAccess } from './random-access';
import { checkImageName, checkRanges, DirImageStore, MAX_IMAGE_BYTES, type ByteRange, type ImageStore } from './criu/image-store';
import { readCheckpointFile } from './safe-read';
import type { ContainerConfigDump, SpecDump } from './checkpoint-info';
import type { CheckpointImageInfo } from './checkpoint-image';

export interface CheckpointSource {
  /** The path given. */
  location: string;
  /**
   * archive: a checkpoint archive file; directory: an unpacked one; criu-images: bare CRIU
   * images; oci-image: the archive at / of a checkpoint image; containerd-image: containerd's
   * own checkpoint image (checkpoint-image.ts).
   */
  kind: 'archive' | 'directory' | 'criu-images' | 'oci-image' | 'containerd-image';
  compression?: ArchiveCompression;
  /** Regular files by normalised name (`config.dump`, `checkpoint/pstree.img`) and their sizes. */
  files: Map<string, number>;
  /** Entries an archive had that are not regular files or directories (never read). */
  skipped: string[];
  /** A top-level file (config.dump, spec.dump, stats-dump, ...), or undefined if absent. */
  readFile(name: string, maxBytes?: number): Promise<Buffer | undefined>;
  /** The CRIU images (checkpoint/ of an archive; the directory itself for a bare image dir). */
  images: ImageStore;
  /** What config.dump and spec.dump would say, for a source that has neither (containerd's own checkpoint image). */
  metadata?: { config: ContainerConfigDump; spec: SpecDump };
  /** The image, when the checkpoint came from an image store. */
  image?: CheckpointImageInfo;
}

export interface SourceLimits {
  /** Total bytes of small files an archive source keeps in memory. */
  maxMemoryBytes?: number;
  /** Entries an archive may have. */
  maxEntries?: number;
}

const DEFAULT_MAX_MEMORY = 512 * 1024 * 1024;
const DEFAULT_MAX_ENTRIES = 100000;
const SMALL_FILE_MAX = 64 * 1024 * 1024;
const CHECKPOINT_PREFIX = `${ArchiveFile.checkpointDir}/`;

/** checkpointctl's name rule: `./a` is `a`; `..`, absolute names and NUL refuse the archive. */
export function normaliseEntryName(name: string): string | undefined {
  if (name.includes('\0')) throw new InvalidArgumentError(`archive entry name ${JSON.stringify(name)} contains NUL`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (name.startsWith('/') || parts.includes('..')) throw new InvalidArgumentError(`archive entry ${JSON.stringify(name)} points outside the archive`);
  return parts.length === 0 ? undefined : parts.join('/');
}

/** Is this archive file one whose content is never needed whole (pages, rootfs diff, volumes, logs)? */
function isBulk(name: string): boolean {
  if (name.startsWith(CHECKPOINT_PREFIX)) {
    const base = name.slice(CHECKPOINT_PREFIX.length);
    return base.startsWith(PAGES_PREFIX) || base.startsWith(AMDGPU_PAGES_PREFIX) || base.includes('/');
  }
  return name === ArchiveFile.rootfsDiffTar || name === ArchiveFile.devShmTar || name.startsWith(`${ArchiveFile.volumesDir}/`) ||
    name === ArchiveFile.containerLog || name === ArchiveFile.podmanLog || name === ArchiveFile.crioLog || name === ArchiveFile.dumpLog ||
    name === ArchiveFile.restoreLog || name.includes('/');
}

/**
 * Where an archive's bytes come from: a file, or a blob of containerd's content store (a
 * checkpoint image's layer). Each open() starts a new pass at the first byte; close() ends it
 * early (the reader stops a pass as soon as it has what it came for).
 */
export interface ArchiveInput {
  /** How the archive is named in messages (a path, or `image NAME layer sha256:…`). */
  describe: string;
  open(): Promise<{ stream: Readable; close(): Promise<void> }>;
  /**
   * Random access to the raw bytes, where the input has it. An uncompressed archive is then
   * indexed by reading its headers and small files only (bulk bodies are skipped), and ranges of
   * its files are read where they lie instead of in another pass.
   */
  openRandom?(): Promise<RandomAccess>;
}

const openFlags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** A checkpoint archive file; opened without following a symlink. */
export function fileArchiveInput(file: string): ArchiveInput {
  return {
    describe: file,
    async open() {
      const fh = await fs.promises.open(file, openFlags);
      const input = fh.createReadStream({ highWaterMark: 1 << 20 });
      return {
        stream: input,
        async close() {
          input.destroy();
          await fh.close().catch(() => undefined);
        },
      };
    },
    async openRandom() {
      const fh = await fs.promises.open(file, openFlags);
      return fileRandomAccess(fh, (await fh.stat()).size);
    },
  };
}

class ArchiveReader {
  readonly files = new Map<string, number>();
  readonly kept = new Map<string, Buffer>();
  readonly skipped: string[] = [];
  compression: ArchiveCompression = 'none';
  private readonly ranges = new Map<string, Buffer>();
  readonly archive: string;

  constructor(private readonly input: ArchiveInput, private readonly limits: Required<SourceLimits>) {
    this.archive = input.describe;
  }

  private wrap(err: unknown): unknown {
    if (err instanceof TarFormatError) return new InvalidArgumentError(`checkpoint archive ${this.archive}: ${err.message}`);
    return err;
  }

  /** Where each file's body starts in the archive, when the archive is read with random access. */
  private offsets?: Map<string, number>;

  /** True once the index pass found an uncompressed archive with random access: ranges are read in place. */
  get randomAccess(): boolean {
    return this.offsets !== undefined;
  }

  /**
   * One pass over the archive; `visit` gets each regular file's normalised name, size, body
   * and body offset. Stops early when visit returns 'stop'. `indexing`: the first pass, which
   * notes the skipped entries and picks random access when the input allows it.
   */
  async walk(visit: (name: string, size: number, body: () => AsyncGenerator<Buffer>, offset: number) => Promise<'stop' | void>, indexing = false): Promise<void> {
    let random: RandomAccess | undefined;
    let input: { stream: Readable; close(): Promise<void> } | undefined;
    try {
      let entries: AsyncIterable<{ header: { name: string; type: string; size: number }; body: () => AsyncGenerator<Buffer>; dataOffset: number }>;
      if (this.input.openRandom && (indexing || this.randomAccess)) {
        random = await this.input.openRandom();
        if (compressionOf(await random.read(0, 4)) !== 'none') {
          await random.close();
          random = undefined;
        }
      }
      if (random) {
        entries = readTarEntries(new RandomAccessIterator(random));
        if (indexing) this.offsets = new Map();
      } else {
        input = await this.input.open();
        const opened = await openArchiveStream(input.stream);
        this.compression = opened.compression;
        entries = readTarEntries(opened.stream);
      }
      let count = 0;
      for await (const entry of entries) {
        if (++count > this.limits.maxEntries) throw new InvalidArgumentError(`checkpoint archive ${this.archive} has more than ${this.limits.maxEntries} entries`);
        const name = normaliseEntryName(entry.header.name);
        if (name === undefined || entry.header.type === 'directory') continue;
        if (entry.header.type !== 'file') {
          if (indexing) this.skipped.push(`${name} (${entry.header.type})`);
          continue;
        }
        if ((await visit(name, entry.header.size, entry.body, entry.dataOffset)) === 'stop') break;
      }
    } catch (err) {
      throw this.wrap(err);
    } finally {
      await random?.close().catch(() => undefined);
      await input?.close();
    }
  }

  async index(): Promise<void> {
    let kept = 0;
    await this.walk(async (name, size, body, offset) => {
      if (this.files.has(name)) throw new InvalidArgumentError(`checkpoint archive ${this.archive}: ${name} appears twice`);
      this.files.set(name, size);
      this.offsets?.set(name, offset);
      if (isBulk(name) || size > SMALL_FILE_MAX) return;
      kept += size;
      if (kept > this.limits.maxMemoryBytes) throw new InvalidArgumentError(`checkpoint archive ${this.archive}: its metadata and images add up to more than ${this.limits.maxMemoryBytes} bytes`);
      const buf = Buffer.alloc(size);
      let len = 0;
      for await (const chunk of body()) {
        chunk.copy(buf, len);
        len += chunk.length;
      }
      this.kept.set(name, buf);
    }, true);
  }

  /** With random access: bytes [offset, offset+length) of file `name`, read where they lie. */
  private async readInPlace(ra: RandomAccess, name: string, r: ByteRange): Promise<Buffer> {
    const at = (this.offsets as Map<string, number>).get(name) as number;
    const buf = await ra.read(at + r.offset, r.length);
    if (buf.length !== r.length) throw new InvalidArgumentError(`checkpoint archive ${this.archive}: ${name} ends before its declared size (the archive is truncated)`);
    return buf;
  }

  /** With random access: file `name` in chunks of at most 1 MiB. */
  async *streamInPlace(name: string): AsyncGenerator<Buffer> {
    const size = this.files.get(name) ?? 0;
    const ra = await (this.input.openRandom as () => Promise<RandomAccess>)();
    try {
      for (let pos = 0; pos < size; pos += LARGE_READ) yield await this.readInPlace(ra, name, { offset: pos, length: Math.min(LARGE_READ, size - pos) });
    } finally {
      await ra.close().catch(() => undefined);
    }
  }

  private static key(name: string, r: ByteRange): string {
    return `${name}\0${r.offset}\0${r.length}`;
  }

  /** One pass over the archive collecting every wanted range of every wanted file. */
  async fetchRanges(wants: readonly { name: string; ranges: readonly ByteRange[] }[]): Promise<void> {
    const byName = new Map<string, ByteRange[]>();
    for (const w of wants) {
      const size = this.files.get(w.name);
      if (size === undefined) throw new NotFoundError(`${this.archive}:${w.name} does not exist`);
      checkRanges(`${this.archive}:${w.name}`, size, w.ranges);
      const todo = w.ranges.filter((r) => !this.ranges.has(ArchiveReader.key(w.name, r)));
      if (todo.length) byName.set(w.name, [...(byName.get(w.name) ?? []), ...todo]);
    }
    if (byName.size === 0) return;
    if (this.randomAccess) {
      const ra = await (this.input.openRandom as () => Promise<RandomAccess>)();
      try {
        for (const [name, ranges] of byName) for (const r of ranges) this.ranges.set(ArchiveReader.key(name, r), await this.readInPlace(ra, name, r));
      } finally {
        await ra.close().catch(() => undefined);
      }
      return;
    }
    let left = byName.size;
    await this.walk(async (name, _size, body) => {
      const ranges = byName.get(name);
      if (!ranges) return;
      const bufs = ranges.map((r) => Buffer.alloc(r.length));
      let pos = 0;
      const end = Math.max(...ranges.map((r) => r.offset + r.length));
      for await (const chunk of body()) {
        const cEnd = pos + chunk.length;
        ranges.forEach((r, i) => {
          const from = Math.max(pos, r.offset);
          const to = Math.min(cEnd, r.offset + r.length);
          if (from < to) chunk.copy(bufs[i], from - r.offset, from - pos, to - pos);
        });
        pos = cEnd;
        if (pos >= end) break;
      }
      ranges.forEach((r, i) => this.ranges.set(ArchiveReader.key(name, r), bufs[i]));
      return --left === 0 ? 'stop' : undefined;
    });
  }

  cachedRange(name: string, r: ByteRange): Buffer | undefined {
    return this.ranges.get(ArchiveReader.key(name, r));
  }
}

/** The checkpoint/ images of an archive, over its ArchiveReader. */
class ArchiveImageStore implements ImageStore {
  constructor(private readonly reader: ArchiveReader, private readonly prefix: string) {}

  describe(name: string): string {
    return `${this.reader.archive}:${this.prefix}${name}`;
  }

  async names(): Promise<string[]> {
    return [...this.reader.files.keys()].filter((n) => n.startsWith(this.prefix) && !n.slice(this.prefix.length).includes('/')).map((n) => n.slice(this.prefix.length)).sort();
  }

  async size(name: string): Promise<number | undefined> {
    checkImageName(name);
    return this.reader.files.get(this.prefix + name);
  }

  async read(name: string, maxBytes: number): Promise<Buffer> {
    checkImageName(name);
    const size = this.reader.files.get(this.prefix + name);
    if (size === undefined) throw new NotFoundError(`${this.describe(name)} does not exist`);
    if (size > maxBytes) throw new InvalidArgumentError(`${this.describe(name)} is ${size} bytes, over the ${maxBytes}-byte limit`);
    const kept = this.reader.kept.get(this.prefix + name);
    if (kept) return kept;
    return (await this.readRanges(name, [{ offset: 0, length: size }]))[0];
  }

  async prefetch(wants: readonly { name: string; ranges: readonly ByteRange[] }[]): Promise<void> {
    await this.reader.fetchRanges(wants.map((w) => ({ name: this.prefix + w.name, ranges: w.ranges })));
  }

  async readRanges(name: string, ranges: readonly ByteRange[]): Promise<Buffer[]> {
    checkImageName(name);
    const full = this.prefix + name;
    const size = this.reader.files.get(full);
    if (size === undefined) throw new NotFoundError(`${this.describe(name)} does not exist`);
    checkRanges(this.describe(name), size, ranges);
    const kept = this.reader.kept.get(full);
    if (kept) return ranges.map((r) => kept.subarray(r.offset, r.offset + r.length));
    if (ranges.some((r) => !this.reader.cachedRange(full, r))) await this.reader.fetchRanges([{ name: full, ranges }]);
    return ranges.map((r) => this.reader.cachedRange(full, r) as Buffer);
  }

  async *stream(name: string): AsyncIterable<Buffer> {
    checkImageName(name);
    const full = this.prefix + name;
    if (!this.reader.files.has(full)) throw new NotFoundError(`${this.describe(name)} does not exist`);
    const kept = this.reader.kept.get(full);
    if (kept) {
      yield kept;
      return;
    }
    if (this.reader.randomAccess) {
      yield* this.reader.streamInPlace(full);
      return;
    }
    // An async generator cannot yield from inside walk's callback: hand chunks over one at a
    // time. A consumer that stops early (memoryPieces, once it has every run) ends the pass.
    const queue: Buffer[] = [];
    let done = false;
    let cancelled = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    let resume: (() => void) | undefined;
    const walking = this.reader.walk(async (n, _s, body) => {
      if (n !== full) return;
      for await (const chunk of body()) {
        if (cancelled) break;
        queue.push(Buffer.from(chunk));
        wake?.();
        if (queue.length > 4) await new Promise<void>((r) => { resume = r; });
      }
      return 'stop';
    }).then(() => { done = true; wake?.(); }, (err) => { failure = err; done = true; wake?.(); });
    try {
      for (;;) {
        if (queue.length > 0) {
          yield queue.shift() as Buffer;
          resume?.();
          resume = undefined;
          continue;
        }
        if (done) break;
        await new Promise<void>((r) => { wake = r; });
        wake = undefined;
      }
    } finally {
      cancelled = true;
      resume?.();
      await walking;
    }
    if (failure) throw failure;
  }
}

async function lstatOrNotFound(p: string): Promise<fs.Stats> {
  try {
    return await fs.promises.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`checkpoint ${p} does not exist`);
    throw err;
  }
}

async function listDir(dir: string, prefix = '', depth = 0, out = new Map<string, number>()): Promise<Map<string, number>> {
  if (depth > 8) return out;
  for (const e of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await listDir(p, `${prefix}${e.name}/`, depth + 1, out);
    else if (e.isFile()) out.set(prefix + e.name, (await fs.promises.lstat(p)).size);
  }
  return out;
}

/** Opens `location` (an archive file, an unpacked archive directory, or a CRIU image directory). Symlinks are not followed. */
export async function openCheckpointSource(location: string, limits: SourceLimits = {}): Promise<CheckpointSource> {
  const st = await lstatOrNotFound(location);
  if (st.isDirectory()) {
    const hasCheckpointDir = await fs.promises.lstat(path.join(location, ArchiveFile.checkpointDir)).then((s) => s.isDirectory(), () => false);
    const imagesDir = hasCheckpointDir ? path.join(location, ArchiveFile.checkpointDir) : location;
    return {
      location,
      kind: hasCheckpointDir ? 'directory' : 'criu-images',
      files: await listDir(location),
      skipped: [],
      async readFile(name, maxBytes = SMALL_FILE_MAX) {
        if (!hasCheckpointDir) return undefined;
        try {
          return await readCheckpointFile(location, name, { maxBytes });
        } catch (err) {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        }
      },
      images: new DirImageStore(imagesDir),
    };
  }
  if (!st.isFile()) throw new InvalidArgumentError(`checkpoint ${location} is a ${fileTypeName(st)}, not an archive file or a directory`);
  return openArchiveSource(fileArchiveInput(location), limits);
}

/**
 * A checkpoint archive read from `input` (a file, or the layer of a checkpoint image): indexed
 * in one streamed pass, then read again only for what is asked.
 */
export async function openArchiveSource(input: ArchiveInput, limits: SourceLimits = {}): Promise<CheckpointSource> {
  const location = input.describe;
  const reader = new ArchiveReader(input, { maxMemoryBytes: limits.maxMemoryBytes ?? DEFAULT_MAX_MEMORY, maxEntries: limits.maxEntries ?? DEFAULT_MAX_ENTRIES });
  await reader.index();
  const hasCheckpoint = [...reader.files.keys()].some((n) => n.startsWith(CHECKPOINT_PREFIX));
  // A flat CRIU tar (containerd's criu.tar, `ctr t checkpoint --image-path` tarred) has the images at the top.
  const flat = !hasCheckpoint && (reader.files.has('inventory.img') || reader.files.has('pstree.img'));
  if (!hasCheckpoint && !flat) throw new InvalidArgumentError(`checkpoint archive ${location} has no ${ArchiveFile.checkpointDir}/ directory of CRIU images`);
  return {
    location,
    kind: flat ? 'criu-images' : 'archive',
    compression: reader.compression,
    files: reader.files,
    skipped: reader.skipped,
    async readFile(name, maxBytes = SMALL_FILE_MAX) {
      if (flat) return undefined;
      const size = reader.files.get(name);
      if (size === undefined) return undefined;
      if (size > maxBytes) throw new InvalidArgumentError(`${location}:${name} is ${size} bytes, over the ${maxBytes}-byte limit`);
      const kept = reader.kept.get(name);
      if (kept) return kept;
      const whole = { offset: 0, length: size };
      await reader.fetchRanges([{ name, ranges: [whole] }]);
      return reader.cachedRange(name, whole);
    },
    images: new ArchiveImageStore(reader, flat ? '' : CHECKPOINT_PREFIX),
  };
}

export { MAX_IMAGE_BYTES };
