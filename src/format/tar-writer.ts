// A small streaming tar writer: the archives and image layers ferry produces (Kubernetes-layout
// checkpoint archives, rootfs-diff.tar, checkpoint image layers). Output is POSIX ustar; an entry
// whose name, link name, size, ids or mtime do not fit ustar's fields gets a PAX extended header
// (`x`) first, as GNU tar's --format=pax does, so every tar reader (GNU tar, Go's archive/tar,
// containers/storage, our tar-reader.ts) reads it.
//
// Why our own: the npm `tar` package writes from the filesystem and decides on its own about
// names and headers; here entries come from several places (files on disk, a layer streamed from
// containerd, JSON built in memory) and the exact bytes matter (deterministic image layers).
//
// Streaming: `writeTar` is an async generator of byte chunks, so whoever consumes it (a
// compressor, a file, containerd's content store) sets the pace and memory stays bounded by a
// chunk. A body must deliver exactly the size declared in its header; anything else is an error
// (a file that changed size while being archived would otherwise corrupt every entry after it).
import { createReadStream, promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors';

/** Entry kinds the writer emits (the reader's types minus 'other'). */
export type TarWriteType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'fifo' | 'char-device' | 'block-device';

export interface TarWriteHeader {
  /** Path inside the archive, relative ('a/b'); directories get their trailing '/' added. */
  name: string;
  type: TarWriteType;
  /** Body length of a 'file' (0 for every other type). */
  size?: number;
  /** Permission bits incl. setuid/setgid/sticky; default 0644 for files, 0755 for directories. */
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Modification time in seconds since the epoch (integer; default now). */
  mtime?: number;
  /** Target of a symlink or hardlink. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /**
   * Further PAX records to carry (e.g. `SCHILY.xattr.security.capability` from a layer being
   * copied), raw bytes allowed. Keys the writer sets itself (path, linkpath, size) are ignored.
   */
  pax?: Record<string, Buffer | string>;
}

/** A body: bytes in memory, or a stream of chunks (read once, when the entry is written). */
export type TarBody = Buffer | AsyncIterable<Buffer> | (() => AsyncIterable<Buffer> | Buffer);

export interface TarWriteEntry extends TarWriteHeader {
  body?: TarBody;
}

export interface TarWriteOptions {
  /**
   * Byte-identical output for identical content: every mtime is `mtime` (default 0), uid/gid 0,
   * no user/group names, and PAX header names derived from the entry name only.
   */
  deterministic?: boolean | { mtime?: number };
}

/** An entry that cannot be written as asked (bad name, size mismatch...). */
export class TarWriteError extends InvalidArgumentError {}

const BLOCK = 512;
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
const TYPEFLAG: Record<TarWriteType, string> = {
  file: '0', hardlink: '1', symlink: '2', 'char-device': '3', 'block-device': '4', directory: '5', fifo: '6',
};
// Largest values the classic octal fields hold: 11 digits (size, mtime), 7 digits (ids, dev).
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

function putString(block: Buffer, value: Buffer, offset: number): void {
  value.copy(block, offset);
}

/** length-1 octal digits, zero padded, NUL terminated (what GNU tar writes). */
function putOctal(block: Buffer, value: number, offset: number, length: number): void {
  block.write(value.toString(8).padStart(length - 1, '0'), offset, length - 1, 'latin1');
  block[offset + length - 1] = 0;
}

/** Splits a name into ustar's prefix (155 bytes) and name (100 bytes) at a '/', or undefined. */
function splitUstarName(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  // The cut is a '/' such that the prefix fits 155 and the rest fits 100 (and is non-empty).
  for (let cut = Math.min(name.length - 1, 155); cut > 0; cut--) {
    if (name[cut] !== 0x2f) continue;
    if (name.length - cut - 1 > 100) return undefined;
    if (name.length - cut - 1 === 0) continue;
    return { prefix: name.subarray(0, cut), name: name.subarray(cut + 1) };
  }
  return undefined;
}

/** One PAX record: "<len> <key>=<value>\n", where len counts the whole record including itself. */
function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.isBuffer(value) ? value : Buffer.from(value), Buffer.from('\n')]);
  let digits = 1;
  while (String(body.length + digits).length !== digits) digits++;
  return Buffer.concat([Buffer.from(String(body.length + digits)), body]);
}

/** PAX keys the writer derives from the header fields; copies of them in `pax` are dropped. */
const OWN_PAX_KEYS = new Set(['path', 'linkpath', 'size']);
/** Keys that carry ownership or time: dropped too in deterministic mode. */
const NONDETERMINISTIC_PAX_KEYS = new Set(['uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime']);

function checkName(name: string, what: string): void {
  if (name === '') throw new TarWriteError(`tar: empty ${what}`);
  if (name.includes('\0')) throw new TarWriteError(`tar: ${what} ${JSON.stringify(name)} contains a NUL byte`);
}

function checkNumber(value: number, what: string, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new TarWriteError(`tar: ${what} ${value} of ${JSON.stringify(name)} is not a non-negative integer`);
}

function block512(fields: {
  name: Buffer; prefix: Buffer; mode: number; uid: number; gid: number; size: number; mtime: number;
  typeflag: string; linkname: Buffer; uname: Buffer; gname: Buffer; devmajor: number; devminor: number;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  putString(h, fields.name, 0);
  putOctal(h, fields.mode, 100, 8);
  putOctal(h, fields.uid, 108, 8);
  putOctal(h, fields.gid, 116, 8);
  putOctal(h, fields.size, 124, 12);
  putOctal(h, fields.mtime, 136, 12);
  h.write(fields.typeflag, 156, 1, 'latin1');
  putString(h, fields.linkname, 157);
  h.write('ustar\u000000', 257, 8, 'latin1');
  putString(h, fields.uname, 265);
  putString(h, fields.gname, 297);
  putOctal(h, fields.devmajor, 329, 8);
  putOctal(h, fields.devminor, 337, 8);
  putString(h, fields.prefix, 345);
  // The checksum is computed with its own field read as eight spaces; stored as 6 digits NUL space.
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

function resolveDeterminism(opts: TarWriteOptions): { mtime: number } | undefined {
  if (!opts.deterministic) return undefined;
  return { mtime: opts.deterministic === true ? 0 : (opts.deterministic.mtime ?? 0) };
}

/**
 * The header block(s) of one entry: a PAX extended header (header + records) when some value
 * does not fit ustar, then the ustar header. Exported for tests and for writers that stream the
 * body themselves.
 */
export function encodeTarHeader(entry: TarWriteHeader, opts: TarWriteOptions = {}): Buffer {
  const det = resolveDeterminism(opts);
  checkName(entry.name, 'entry name');
  const isDir = entry.type === 'directory';
  const nameText = isDir && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
  const mode = entry.mode ?? (isDir ? 0o755 : 0o644);
  const uid = det ? 0 : (entry.uid ?? 0);
  const gid = det ? 0 : (entry.gid ?? 0);
  const mtime = det ? det.mtime : (entry.mtime ?? Math.floor(Date.now() / 1000));
  const linkText = entry.linkname ?? '';
  if ((entry.type === 'symlink' || entry.type === 'hardlink') && linkText === '') {
    throw new TarWriteError(`tar: ${entry.type} ${JSON.stringify(entry.name)} has no link target`);
  }
  if (linkText.includes('\0')) throw new TarWriteError(`tar: link target of ${JSON.stringify(entry.name)} contains a NUL byte`);
  for (const [what, v] of [['size', size], ['uid', uid], ['gid', gid], ['mtime', mtime], ['devmajor', entry.devmajor ?? 0], ['devminor', entry.devminor ?? 0]] as const) {
    checkNumber(v, what, entry.name);
  }
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new TarWriteError(`tar: mode ${mode} of ${JSON.stringify(entry.name)} is not a permission mode`);
  if ((entry.devmajor ?? 0) > MAX_OCTAL_7 || (entry.devminor ?? 0) > MAX_OCTAL_7) {
    throw new TarWriteError(`tar: device numbers of ${JSON.stringify(entry.name)} do not fit a tar header`);
  }
  const uname = Buffer.from(det ? '' : (entry.uname ?? ''));
  const gname = Buffer.from(det ? '' : (entry.gname ?? ''));

  const records: Buffer[] = [];
  const nameBytes = Buffer.from(nameText);
  let split = splitUstarName(nameBytes);
  if (!split) {
    records.push(paxRecord('path', nameText));
    // The ustar fields keep a truncated name for readers that ignore PAX (as GNU tar does).
    split = { prefix: Buffer.alloc(0), name: truncateUtf8(nameBytes, 100) };
  }
  let linkBytes: Buffer = Buffer.from(linkText);
  if (linkBytes.length > 100) {
    records.push(paxRecord('linkpath', linkText));
    linkBytes = truncateUtf8(linkBytes, 100);
  }
  if (size > MAX_OCTAL_11) records.push(paxRecord('size', String(size)));
  if (uid > MAX_OCTAL_7) records.push(paxRecord('uid', String(uid)));
  if (gid > MAX_OCTAL_7) records.push(paxRecord('gid', String(gid)));
  if (mtime > MAX_OCTAL_11) records.push(paxRecord('mtime', String(mtime)));
  if (uname.length > 32) records.push(paxRecord('uname', uname.toString()));
  if (gname.length > 32) records.push(paxRecord('gname', gname.toString()));
  const written = new Set(records.map((r) => r.toString('latin1').split(' ', 2)[1]!.split('=', 1)[0]!));
  for (const [key, value] of Object.entries(entry.pax ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (key === '' || key.includes('=') || key.includes('\n') || key.includes('\0')) throw new TarWriteError(`tar: bad PAX key ${JSON.stringify(key)} on ${JSON.stringify(entry.name)}`);
    if (OWN_PAX_KEYS.has(key) || written.has(key) || (det && NONDETERMINISTIC_PAX_KEYS.has(key))) continue;
    records.push(paxRecord(key, value));
  }

  const ustar = block512({
    name: split.name, prefix: split.prefix, mode,
    uid: Math.min(uid, MAX_OCTAL_7), gid: Math.min(gid, MAX_OCTAL_7),
    size: Math.min(size, MAX_OCTAL_11), mtime: Math.min(mtime, MAX_OCTAL_11),
    typeflag: TYPEFLAG[entry.type], linkname: linkBytes,
    uname: truncateUtf8(uname, 32), gname: truncateUtf8(gname, 32),
    devmajor: entry.devmajor ?? 0, devminor: entry.devminor ?? 0,
  });
  if (records.length === 0) return ustar;

  const data = Buffer.concat(records);
  // GNU tar names the extended header "<dir>/PaxHeaders/<base>"; a short, stable name is enough.
  const base = path.posix.basename(nameText.replace(/\/$/, '')) || 'entry';
  const paxHeader = block512({
    name: truncateUtf8(Buffer.from(`PaxHeaders/${base}`), 100), prefix: Buffer.alloc(0), mode: 0o644,
    uid: 0, gid: 0, size: data.length, mtime: Math.min(mtime, MAX_OCTAL_11), typeflag: 'x', linkname: Buffer.alloc(0),
    uname: Buffer.alloc(0), gname: Buffer.alloc(0), devmajor: 0, devminor: 0,
  });
  return Buffer.concat([paxHeader, data, Buffer.alloc(padding(data.length)), ustar]);
}

/** Cuts at most `max` bytes without splitting a UTF-8 sequence. */
function truncateUtf8(b: Buffer, max: number): Buffer {
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

async function* bodyChunks(body: TarBody | undefined): AsyncGenerator<Buffer> {
  if (body === undefined) return;
  if (Buffer.isBuffer(body)) { if (body.length > 0) yield body; return; }
  const iterable = typeof body === 'function' ? body() : body;
  if (Buffer.isBuffer(iterable)) { if (iterable.length > 0) yield iterable; return; }
  for await (const chunk of iterable) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
}

/**
 * The archive's bytes, entry by entry, ending with the two zero blocks. Throws (and so fails the
 * consumer's pipeline) when a body is longer or shorter than its declared size.
 */
export async function* writeTar(entries: Iterable<TarWriteEntry> | AsyncIterable<TarWriteEntry>, opts: TarWriteOptions = {}): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    const size = entry.type === 'file' ? (entry.size ?? (Buffer.isBuffer(entry.body) ? entry.body.length : 0)) : 0;
    if (entry.type !== 'file' && entry.body !== undefined && !(Buffer.isBuffer(entry.body) && entry.body.length === 0)) {
      throw new TarWriteError(`tar: ${entry.type} ${JSON.stringify(entry.name)} cannot have a body`);
    }
    yield encodeTarHeader({ ...entry, size }, opts);
    let written = 0;
    for await (const chunk of bodyChunks(entry.body)) {
      written += chunk.length;
      if (written > size) throw new TarWriteError(`tar: ${JSON.stringify(entry.name)} has more than the ${size} bytes declared (did it grow while being archived?)`);
      yield chunk;
    }
    if (written !== size) throw new TarWriteError(`tar: ${JSON.stringify(entry.name)} has ${written} bytes, ${size} declared (did it shrink while being archived?)`);
    const pad = padding(size);
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield END_OF_ARCHIVE;
}

/** Chunk size for reading files into an archive (large: the pages of a memory dump). */
const READ_CHUNK = 1024 * 1024;
/**
 * Files up to this size are read in one synchronous call when their turn comes: a CRIU image
 * directory is mostly small files, and a read stream costs four threadpool round trips each
 * (open, read, read to EOF, close): ~0.5 ms per file, ~25 ms of an idle container's 0.2 MiB export.
 */
const SMALL_FILE = 64 * 1024;

/** A regular file on disk as an entry: size and mode from lstat, body read when written. */
export async function fileEntry(filePath: string, name: string, overrides: Partial<TarWriteHeader> = {}): Promise<TarWriteEntry> {
  const st = await fsp.lstat(filePath);
  if (!st.isFile()) throw new TarWriteError(`tar: ${filePath} is not a regular file`);
  return {
    name, type: 'file', size: st.size, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000),
    body: st.size <= SMALL_FILE ? () => readFileSync(filePath) : () => createReadStream(filePath, { highWaterMark: READ_CHUNK }),
    ...overrides,
  };
}

/**
 * A directory tree as entries under `prefix` ('' for the top): the directory itself first, then
 * its contents sorted by name (stable output). Only directories and regular files are allowed
 * (a CRIU image directory holds nothing else); anything else is refused rather than skipped, so
 * an archive never silently lacks a file.
 */
export async function* directoryEntries(dir: string, prefix: string, overrides: Partial<TarWriteHeader> = {}): AsyncGenerator<TarWriteEntry> {
  const st = await fsp.lstat(dir);
  if (!st.isDirectory()) throw new TarWriteError(`tar: ${dir} is not a directory`);
  if (prefix !== '') {
    yield { name: prefix, type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), ...overrides };
  }
  const names = (await fsp.readdir(dir)).sort();
  for (const n of names) {
    const full = path.join(dir, n);
    const child = prefix === '' ? n : `${prefix.replace(/\/$/, '')}/${n}`;
    const cst = await fsp.lstat(full);
    if (cst.isDirectory()) yield* directoryEntries(full, child, overrides);
    else if (cst.isFile()) yield await fileEntry(full, child, overrides);
    else throw new TarWriteError(`tar: ${full} is neither a regular file nor a directory`);
  }
}
