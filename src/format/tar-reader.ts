// A small streaming tar reader of our own, for checkpoint archives that are untrusted input.
//
// Why not the npm `tar` package: it is a general extractor (it creates symlinks, hardlinks and
// devices, and its many options are a large surface to get wrong). We only need to *list*
// entries and stream the bodies of regular files, and every policy decision (what to create,
// where) lives in archive-staging.ts. This reader therefore never touches the filesystem.
//
// Supported: ustar (with the prefix field), old v7 headers, GNU long names/links (`L`/`K`),
// PAX extended (`x`) and global (`g`) headers for `path`, `linkpath` and `size`, base-256
// numeric fields, gzip / zstd / plain input chosen by magic bytes. Everything is streamed:
// memory use is bounded by one input chunk plus the (capped) metadata records.

import { Readable } from 'node:stream';
import { zlib } from '../loader/on-first-use';
import { pipeline } from 'node:stream';
import { InvalidArgumentError } from '../errors';

/** Malformed or hostile tar/gzip/zstd content. Callers add which archive it was. */
export class TarFormatError extends InvalidArgumentError {}

export type TarEntryType =
  | 'file'
  | 'directory'
  | 'symlink'
  | 'hardlink'
  | 'char-device'
  | 'block-device'
  | 'fifo'
  | 'other';

export interface TarEntryHeader {
  /** Full name after PAX / GNU long-name / ustar-prefix resolution, exactly as stored (not normalised). */
  name: string;
  /** Link target for symlinks and hardlinks ('' otherwise). */
  linkname: string;
  type: TarEntryType;
  /** The raw typeflag character ('0', '5', 'S', ...), for messages about `other` entries. */
  typeflag: string;
  /** Permission bits as stored, including setuid/setgid/sticky (policy strips them later). */
  mode: number;
  uid: number;
  gid: number;
  /** Number of body bytes that follow the header. */
  size: number;
  mtime: number;
  /** Device numbers of character and block devices (0 otherwise). */
  devmajor: number;
  devminor: number;
  /**
   * PAX records of the entry other than path, linkpath and size (e.g. `SCHILY.xattr.*`, a
   * fractional `mtime`), raw bytes as stored; undefined when there are none. Writers that copy
   * entries (rootfs-diff.ts) pass them on so that file capabilities and other xattrs survive.
   */
  pax?: Record<string, Buffer>;
}

export interface TarEntry {
  header: TarEntryHeader;
  /**
   * The body, streamed. Read it (fully or partly) before asking for the next entry; whatever
   * was not read is skipped automatically when iteration continues.
   */
  body(): AsyncGenerator<Buffer>;
  /** Where the body starts in the (decompressed) tar stream: with random access, it is read from there. */
  dataOffset: number;
}

/**
 * An input the reader can skip through without reading: `skip(n)` moves past the next n bytes
 * (only called between next() calls) and returns false when fewer than n are left, so that a
 * truncated archive is still read as far as it goes and reported. A plain file or a blob with
 * random access gives one; a decompressor cannot.
 */
export interface SkippableIterator extends AsyncIterator<Buffer> {
  skip(n: number): boolean;
}

/** Bodies (and their unread rest) at least this long are skipped over, not read, when the input can skip. */
const SKIP_WITHOUT_READING = 256 * 1024;

export interface TarReadOptions {
  /** Cap for one PAX record set or GNU long name (they are buffered in memory). Default 1 MiB. */
  maxMetadataBytes?: number;
  /**
   * Called with each input chunk once the reader holds no part of it: it has handed out the
   * chunk's last byte and has been called again since (on the entries or on a body), so that a
   * slice handed out stays valid until the caller's next call and no longer: a caller keeping a
   * slice beyond that (a write still in flight) must say so to whoever reuses the chunk. Lets a
   * decompressor reuse its output memory (chunk-leases.ts). Chunks still held at the end are not reported.
   */
  onChunkDone?: (chunk: Buffer) => void;
}

export type ArchiveCompression = 'gzip' | 'zstd' | 'none';

const BLOCK = 512;
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const DEFAULT_MAX_METADATA = 1 << 20;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Pull-based byte source over an async iterator of chunks. Keeps a queue of chunks and an
 * offset so that neither headers nor bodies cause repeated concatenation of large buffers.
 */
class ByteSource {
  private chunks: Buffer[] = [];
  private offset = 0; // into chunks[0]
  private buffered = 0;
  private ended = false;
  /** Bytes handed out or skipped so far: the stream position of the next byte. */
  position = 0;
  /** Chunks wholly handed out, reported to onChunkDone at the next call. */
  private finished: Buffer[] = [];

  constructor(
    private readonly it: AsyncIterator<Buffer> | SkippableIterator,
    private readonly onChunkDone?: (chunk: Buffer) => void,
  ) {}

  /** A new call: slices handed out before are the caller's now, their chunks are done here. */
  private reportFinished(): void {
    if (this.finished.length === 0) return;
    const done = this.finished;
    this.finished = [];
    for (const chunk of done) this.onChunkDone?.(chunk);
  }

  /** Ensures at least n bytes are buffered; false if the input ended first. */
  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.ended) return false;
      const next = await this.it.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  /** Exactly n bytes; null on a clean end (nothing left); throws if the input ends midway. */
  async readExact(n: number, what: string): Promise<Buffer | null> {
    this.reportFinished();
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return null;
      throw new TarFormatError(`truncated archive: ${what} needs ${n} bytes, only ${this.buffered} left`);
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    while (copied < n) copied += this.take(n - copied).copy(out, copied);
    return out;
  }

  /** Between 1 and max bytes (zero-copy slice of a chunk); throws if the input has ended. */
  async readSome(max: number, what: string): Promise<Buffer> {
    this.reportFinished();
    if (!(await this.fill(1))) throw new TarFormatError(`truncated archive: ${what}`);
    return this.take(max);
  }

  /** Discards n bytes without keeping them (without reading them, when the input can skip). */
  async skip(n: number, what: string): Promise<void> {
    this.reportFinished();
    let left = n;
    while (left > 0 && this.buffered > 0) left -= this.take(left).length;
    if (left >= SKIP_WITHOUT_READING && 'skip' in this.it && this.it.skip(left)) {
      this.position += left;
      return;
    }
    while (left > 0) left -= (await this.readSome(left, what)).length;
  }

  private take(max: number): Buffer {
    const head = this.chunks[0];
    const n = Math.min(max, head.length - this.offset);
    const out = head.subarray(this.offset, this.offset + n);
    this.offset += n;
    this.buffered -= n;
    this.position += n;
    if (this.offset === head.length) {
      this.chunks.shift();
      this.offset = 0;
      if (this.onChunkDone) this.finished.push(head);
    }
    return out;
  }
}

/** NUL-terminated string field (C semantics: anything after the first NUL is ignored). */
function cString(block: Buffer, start: number, length: number): Buffer {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

function decodeName(bytes: Buffer, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // A lossy decode could map two different byte names to one string; refuse instead.
    throw new TarFormatError(`${what} is not valid UTF-8`);
  }
}

/**
 * A numeric header field: octal text (space/NUL padded), or GNU base-256 when the top bit of
 * the first byte is set. Anything else, negative values and values beyond 2^53 are refused.
 */
export function parseNumeric(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if (field[0] & 0x80) {
    if (field[0] === 0xff) throw new TarFormatError(`${what}: negative base-256 value`);
    let value = BigInt(field[0] & 0x7f);
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i]);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`${what}: base-256 value too large`);
    return Number(value);
  }
  // Octal digits between leading spaces and trailing NULs/spaces, read byte by byte: headers
  // have seven such fields and a CRIU checkpoint thousands of headers (no string per field).
  let i = 0;
  let end = field.length;
  while (end > 0 && (field[end - 1] === 0 || field[end - 1] === 0x20)) end--;
  while (i < end && field[i] === 0x20) i++;
  let value = 0;
  for (let j = i; j < end; j++) {
    const d = field[j] - 0x30;
    if (d < 0 || d > 7) {
      throw new TarFormatError(`${what}: not an octal number: ${JSON.stringify(field.toString('latin1', i, end))}`);
    }
    value = value * 8 + d;
  }
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`${what}: value too large`);
  return value;
}

function checksumMatches(block: Buffer): boolean {
  let stored: number;
  try {
    stored = parseNumeric(block, 148, 8, 'header checksum');
  } catch {
    return false;
  }
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += block[i];
    signed += block[i] > 127 ? block[i] - 256 : block[i];
  }
  // Some historic writers summed signed chars; accepting both is what GNU tar does.
  return stored === unsigned || stored === signed;
}

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case '0': case '\0': case '7': return 'file';
    case '1': return 'hardlink';
    case '2': return 'symlink';
    case '3': return 'char-device';
    case '4': return 'block-device';
    case '5': return 'directory';
    case '6': return 'fifo';
    default: return 'other';
  }
}

const isDevice = (t: TarEntryType): boolean => t === 'char-device' || t === 'block-device';

interface PaxOverrides { path?: string; linkpath?: string; size?: number; other?: Record<string, Buffer> }

/** Parses "<len> <key>=<value>\n" records; strict about lengths so a record cannot hide another. */
function parsePax(data: Buffer): PaxOverrides {
  const out: PaxOverrides = {};
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // trailing NUL padding written by some tools
    const space = data.indexOf(0x20, pos);
    if (space === -1 || space - pos > 20) throw new TarFormatError('PAX header: malformed record length');
    const lenText = data.toString('latin1', pos, space);
    if (!/^[1-9][0-9]*$/.test(lenText)) throw new TarFormatError(`PAX header: bad record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = pos + len;
    if (end > data.length || data[end - 1] !== 0x0a) throw new TarFormatError('PAX header: record overruns its header');
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('PAX header: record without key=value');
    const key = record.toString('latin1', 0, eq);
    const value = record.subarray(eq + 1);
    if (key === 'path') out.path = decodeName(value, 'PAX path');
    else if (key === 'linkpath') out.linkpath = decodeName(value, 'PAX linkpath');
    else if (key === 'size') {
      const text = value.toString('latin1');
      if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new TarFormatError(`PAX header: bad size ${JSON.stringify(text)}`);
      }
      out.size = Number(text);
    } else {
      // Other keys (mtime, uid, xattrs, GNU.sparse.*) carry nothing our policy uses; they are
      // kept for writers that copy entries. Object.create(null): a key is never a prototype.
      out.other ??= Object.create(null) as Record<string, Buffer>;
      out.other[key] = Buffer.from(value);
    }
    pos = end;
  }
  return out;
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/**
 * Streams the entries of a plain (already decompressed) tar stream. Metadata entries (PAX,
 * GNU long names) are folded into the entry they describe and never yielded.
 */
export async function* readTarEntries(
  input: AsyncIterable<Buffer> | SkippableIterator,
  opts: TarReadOptions = {},
): AsyncGenerator<TarEntry> {
  const maxMeta = opts.maxMetadataBytes ?? DEFAULT_MAX_METADATA;
  const src = new ByteSource(Symbol.asyncIterator in input ? input[Symbol.asyncIterator]() : input, opts.onChunkDone);
  let global: PaxOverrides = {};
  let local: PaxOverrides = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  let index = 0;

  const readMeta = async (size: number, what: string): Promise<Buffer> => {
    if (size > maxMeta) throw new TarFormatError(`${what} of ${size} bytes exceeds the ${maxMeta}-byte limit`);
    const data = (await src.readExact(size, what)) ?? Buffer.alloc(0);
    if (data.length !== size) throw new TarFormatError(`truncated archive: ${what}`);
    await src.skip(padding(size), `${what} padding`);
    return data;
  };

  for (;;) {
    const block = await src.readExact(BLOCK, `header #${index}`);
    if (block === null) {
      // End of input without the two zero blocks: acceptable only between entries, and only
      // if no metadata header was left dangling.
      if (longName !== undefined || longLink !== undefined || Object.keys(local).length > 0) {
        throw new TarFormatError('truncated archive: metadata header without its entry');
      }
      return;
    }
    if (block.equals(ZERO_BLOCK)) return; // end-of-archive marker; trailing data is ignored
    if (!checksumMatches(block)) throw new TarFormatError(`header #${index}: checksum mismatch (corrupt or not a tar archive)`);
    index++;

    const typeflag = String.fromCharCode(block[156]);
    const headerSize = parseNumeric(block, 124, 12, 'size');

    // Metadata headers always use their own size field; PAX size overrides describe the
    // next real entry only.
    if (typeflag === 'L' || typeflag === 'K') {
      const data = await readMeta(headerSize, typeflag === 'L' ? 'GNU long name' : 'GNU long link');
      const value = decodeName(cString(data, 0, data.length), 'GNU long name');
      if (typeflag === 'L') longName = value;
      else longLink = value;
      continue;
    }
    if (typeflag === 'x' || typeflag === 'g') {
      const pax = parsePax(await readMeta(headerSize, typeflag === 'x' ? 'PAX header' : 'PAX global header'));
      if (typeflag === 'x') local = { ...local, ...pax };
      else global = { ...global, ...pax };
      continue;
    }

    const size = local.size ?? global.size ?? headerSize;
    const magic = block.toString('latin1', 257, 263);
    const isPosixUstar = magic === 'ustar\0';
    let name = decodeName(cString(block, 0, 100), 'entry name');
    if (isPosixUstar) {
      // GNU tar uses bytes 345.. for atime/ctime, so the prefix field only exists in POSIX ustar.
      const prefix = decodeName(cString(block, 345, 155), 'entry name prefix');
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    name = local.path ?? longName ?? global.path ?? name;
    const linkname = local.linkpath ?? longLink ?? global.linkpath ?? decodeName(cString(block, 157, 100), 'link name');

    let type = typeOf(typeflag);
    // Pre-POSIX archives mark directories only by a trailing slash on a regular-file entry.
    if (type === 'file' && typeflag !== '7' && name.endsWith('/')) type = 'directory';

    const header: TarEntryHeader = {
      name,
      linkname,
      type,
      typeflag,
      mode: parseNumeric(block, 100, 8, 'mode'),
      uid: parseNumeric(block, 108, 8, 'uid'),
      gid: parseNumeric(block, 116, 8, 'gid'),
      size,
      mtime: parseNumeric(block, 136, 12, 'mtime'),
      devmajor: isDevice(type) ? parseNumeric(block, 329, 8, 'devmajor') : 0,
      devminor: isDevice(type) ? parseNumeric(block, 337, 8, 'devminor') : 0,
    };
    const paxOther = global.other || local.other ? { ...global.other, ...local.other } : undefined;
    if (paxOther) header.pax = paxOther;
    local = {};
    longName = undefined;
    longLink = undefined;

    let remaining = size;
    const what = `body of ${JSON.stringify(name)} (${size} bytes declared)`;
    async function* body(): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        const chunk = await src.readSome(remaining, what);
        remaining -= chunk.length;
        yield chunk;
      }
    }
    yield { header, body, dataOffset: src.position };
    await src.skip(remaining, what);
    await src.skip(padding(size), `padding of ${JSON.stringify(name)}`);
  }
}

/**
 * The largest zstd window accepted, as a power of two: 2^27 = 128 MiB, zstd's own default limit
 * for decompression (what `zstd -d` and `tar --zstd` accept without --long): bounds the memory a
 * hostile frame header can make the decoder allocate.
 */
export const ZSTD_WINDOW_LOG_MAX = 27;

/** Output buffer of one zstd decompression step: one tar body chunk, one write. */
const ZSTD_OUTPUT_CHUNK = 1 << 20;

/**
 * zstd decompression, pulled: Node 20's zlib has no zstd. zstd-napi runs the reference C library
 * (fzstd, in JavaScript, staged a tar+zstd archive at 7 % of `tar --zstd -xf`'s speed); loaded on
 * the first zstd archive only, since it loads a native addon. Its DCtx is driven directly rather
 * than through its Transform stream: a step decompresses only when the tar reader asks for more,
 * so one step's output (at most ZSTD_OUTPUT_CHUNK) bounds the memory whatever the ratio (a few
 * KiB of RLE blocks can expand to hundreds of MiB), and the output goes on as 1 MiB chunks rather
 * than as the Transform's 128 KiB pieces that a Readable's iterator then concatenates again.
 */
async function* zstdDecompress(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require('zstd-napi/binding') as typeof import('zstd-napi/binding');
  const dctx = new binding.DCtx();
  dctx.setParameter(binding.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
  // Its errors (corrupt data, a frame cut short) are content errors: say so, as for gzip.
  const step = (dst: Buffer, src: Buffer): [number, number, number] => {
    try {
      return dctx.decompressStream(dst, src);
    } catch (err) {
      throw new TarFormatError(`zstd: ${(err as Error).message}`);
    }
  };
  let inFrame = false;
  let dst = Buffer.allocUnsafe(ZSTD_OUTPUT_CHUNK);
  for await (const chunk of input) {
    let src = chunk;
    for (;;) {
      const [ret, produced, consumed] = step(dst, src);
      src = src.subarray(consumed);
      const full = produced === dst.length;
      if (produced > 0) {
        yield dst.subarray(0, produced);
        dst = Buffer.allocUnsafe(ZSTD_OUTPUT_CHUNK); // the consumer may keep what it was given
      }
      if (src.length === 0 && (!full || ret === 0)) {
        inFrame = ret !== 0;
        break;
      }
    }
  }
  if (inFrame) throw new TarFormatError('zstd: Stream ended in middle of compressed data frame');
}

async function* prepend(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield first;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/** zlib's errors (Z_DATA_ERROR, Z_BUF_ERROR for a truncated stream) mean bad content. */
async function* translateDecompressErrors(stream: AsyncIterable<Buffer>, kind: string): AsyncGenerator<Buffer> {
  try {
    yield* stream;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) throw new TarFormatError(`${kind}: ${(err as Error).message}`);
    throw err;
  }
}

/** The compression an archive's first bytes (at least 4) announce. */
export function compressionOf(head: Buffer): ArchiveCompression {
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * Detects the compression of `input` from its first bytes and returns the decompressed byte
 * stream. The first chunk is peeked, not consumed; if the input is shorter than a magic
 * number it is treated as plain tar (and the tar reader reports it as truncated).
 */
export async function openArchiveStream(
  input: Readable,
): Promise<{ compression: ArchiveCompression; stream: AsyncIterable<Buffer> }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  // Gather at least 4 bytes (the zstd magic) unless the input is shorter.
  const head: Buffer[] = [];
  let headLen = 0;
  while (headLen < ZSTD_MAGIC.length) {
    const next = await it.next();
    if (next.done) break;
    head.push(next.value);
    headLen += next.value.length;
  }
  const first = Buffer.concat(head);

  const raw = prepend(first, it);
  if (first.subarray(0, 4).equals(ZSTD_MAGIC)) return { compression: 'zstd', stream: zstdDecompress(raw) };
  if (!first.subarray(0, 2).equals(GZIP_MAGIC)) return { compression: 'none', stream: raw };
  const produced = { bytes: 0 };
  const source = Readable.from(slicedForRatio(raw, produced), { objectMode: false });
  // pipeline() destroys every stage when one fails, so an input read error surfaces from the
  // decompressor's iterator rather than leaving it waiting forever.
  const out = pipeline(source, zlib().createGunzip({ chunkSize: 64 * 1024 }), () => { /* errors surface through iteration */ });
  return { compression: 'gzip', stream: countBytes(translateDecompressErrors(out, 'gzip'), produced) };
}

/**
 * gunzip is a Transform, whose backpressure acts between its input chunks only: whatever one
 * chunk decompresses to is buffered at once, and a few KiB of gzip can expand to many MiB.
 * Compressed input is therefore handed on in slices sized from the ratio seen so far, so that one
 * slice's output stays near SLICE_OUTPUT_TARGET; ordinary archives go in slices of up to 1 MiB.
 * (zstd needs none of this: zstdDecompress decompresses only as far as it is read.)
 */
const SLICE_OUTPUT_TARGET = 4 * 1024 * 1024;
const MIN_SLICE = 64;
const MAX_SLICE = 1024 * 1024;

async function* slicedForRatio(input: AsyncIterable<Buffer>, produced: { bytes: number }): AsyncGenerator<Buffer> {
  let consumed = 0;
  for await (const chunk of input) {
    for (let at = 0; at < chunk.length;) {
      // Until output has been seen, assume the worst (MIN_SLICE).
      const ratio = consumed > 0 && produced.bytes > 0 ? Math.max(1, produced.bytes / consumed) : SLICE_OUTPUT_TARGET / MIN_SLICE;
      const size = Math.min(MAX_SLICE, Math.max(MIN_SLICE, Math.floor(SLICE_OUTPUT_TARGET / ratio)));
      const piece = chunk.subarray(at, at + size);
      at += piece.length;
      consumed += piece.length;
      yield piece;
    }
  }
}

async function* countBytes(stream: AsyncIterable<Buffer>, counter: { bytes: number }): AsyncGenerator<Buffer> {
  for await (const chunk of stream) {
    counter.bytes += chunk.length;
    yield chunk;
  }
}
