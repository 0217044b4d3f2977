// Test-only tar writer that can produce *wrong* archives on purpose: any name bytes, any
// typeflag, declared sizes that differ from the body, bad checksums, base-256 fields, PAX and
// GNU long-name headers with hostile values. Also a zstd frame writer (raw blocks, no
// compression) because Node 20 has no zstd compressor and the corpus must not need a binary.

import * as zlib from 'node:zlib';

const BLOCK = 512;
const MTIME = 1704067200; // 2024-01-01, fixed for reproducible archives

export interface RawEntry {
  name: string | Buffer;
  /** typeflag character; default '0' */
  type?: string;
  mode?: number;
  data?: Buffer;
  /** declared size; default data.length */
  size?: number;
  /** raw 12-byte size field (e.g. base-256), overrides `size` */
  sizeField?: Buffer;
  linkname?: string;
  /** POSIX ustar prefix field */
  prefix?: string;
  devmajor?: number;
  devminor?: number;
  /** 'ustar' (POSIX, default), 'gnu' ("ustar  \0"), 'v7' (no magic) */
  format?: 'ustar' | 'gnu' | 'v7';
  /** add this to the computed checksum */
  checksumDelta?: number;
  /** write only this many body bytes (simulates truncation) */
  truncateBodyTo?: number;
}

function put(h: Buffer, value: string | Buffer, offset: number, length: number): void {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (bytes.length > length) throw new Error(`test tar: field too long at ${offset}`);
  bytes.copy(h, offset);
}

function octal(h: Buffer, value: number, offset: number, length: number): void {
  put(h, value.toString(8).padStart(length - 1, '0'), offset, length - 1);
}

export function header(e: RawEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const data = e.data ?? Buffer.alloc(0);
  put(h, e.name, 0, 100);
  octal(h, e.mode ?? 0o644, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  if (e.sizeField) e.sizeField.copy(h, 124);
  else octal(h, e.size ?? data.length, 124, 12);
  octal(h, MTIME, 136, 12);
  h[156] = (e.type ?? '0').charCodeAt(0);
  put(h, e.linkname ?? '', 157, 100);
  const format = e.format ?? 'ustar';
  if (format === 'ustar') put(h, 'ustar\x0000', 257, 8);
  if (format === 'gnu') put(h, 'ustar  \x00', 257, 8);
  if (format !== 'v7') {
    put(h, 'root', 265, 32);
    put(h, 'root', 297, 32);
    octal(h, e.devmajor ?? 0, 329, 8);
    octal(h, e.devminor ?? 0, 337, 8);
  }
  if (e.prefix) put(h, e.prefix, 345, 155);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  sum += e.checksumDelta ?? 0;
  put(h, sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

function pad(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

export function entryBytes(e: RawEntry): Buffer {
  const data = e.data ?? Buffer.alloc(0);
  const body = e.truncateBodyTo !== undefined ? data.subarray(0, e.truncateBodyTo) : data;
  return Buffer.concat([header(e), body, e.truncateBodyTo !== undefined ? Buffer.alloc(0) : pad(body.length)]);
}

/** A whole archive; `end: false` omits the two zero blocks (as a truncated archive would). */
export function buildTar(entries: RawEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts = entries.map(entryBytes);
  if (opts.end !== false) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

export const file = (name: string, content: string | Buffer, mode = 0o644): RawEntry => ({
  name, type: '0', mode, data: Buffer.isBuffer(content) ? content : Buffer.from(content),
});
export const dir = (name: string, mode = 0o755): RawEntry => ({ name, type: '5', mode });
export const symlink = (name: string, target: string): RawEntry => ({ name, type: '2', mode: 0o777, linkname: target });
export const hardlink = (name: string, target: string): RawEntry => ({ name, type: '1', linkname: target });

/** PAX records "<len> key=value\n", the length counting itself. */
export function paxData(records: Record<string, string | Buffer>): Buffer {
  const out: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.isBuffer(value) ? value : Buffer.from(value), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out.push(Buffer.from(String(len)), body);
  }
  return Buffer.concat(out);
}
export const pax = (records: Record<string, string | Buffer>, type: 'x' | 'g' = 'x'): RawEntry => ({
  name: 'PaxHeader', type, data: paxData(records),
});
export const gnuLongName = (name: string | Buffer, type: 'L' | 'K' = 'L'): RawEntry => ({
  name: '././@LongLink', type, format: 'gnu',
  data: Buffer.concat([Buffer.isBuffer(name) ? name : Buffer.from(name), Buffer.from([0])]),
});

/** GNU base-256 numeric field of `length` bytes. */
export function base256(value: bigint, length = 12, negative = false): Buffer {
  const b = Buffer.alloc(length, negative ? 0xff : 0);
  if (negative) return b;
  let v = value;
  for (let i = length - 1; i > 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[0] = 0x80;
  return b;
}

export const gzip = (data: Buffer): Buffer => zlib.gzipSync(data);

/** A valid zstd frame made of raw (stored) blocks. */
export function zstdStored(data: Buffer): Buffer {
  // magic, frame header descriptor 0 (no content size, not single-segment, no checksum),
  // window descriptor 0x58 (2 MiB window)
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])];
  const MAX = 128 * 1024;
  let off = 0;
  do {
    const chunk = data.subarray(off, off + MAX);
    off += chunk.length;
    const last = off >= data.length ? 1 : 0;
    const bh = Buffer.alloc(3);
    bh.writeUIntLE((chunk.length << 3) | last, 0, 3); // block type 0 = raw
    parts.push(bh, chunk);
  } while (off < data.length);
  return Buffer.concat(parts);
}
