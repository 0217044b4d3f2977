// Where the files of a CRIU image directory come from: a directory on disk, or the checkpoint/
// part of an archive read as a stream (checkpoint-source.ts). The decoder asks only for whole
// small images (bounded) and for byte ranges of the raw pages images, so neither kind of store
// ever has to hold a pages file in memory or unpack it to disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { fileTypeName } from '../file-type';

export interface ImageStore {
  /** How a file of this store is named in messages: `describe('pstree.img')`. */
  describe(name: string): string;
  /** Names of the regular files of the image directory (not of its subdirectories). */
  names(): Promise<string[]>;
  /** The size of `name`, or undefined if it is absent. Refuses a name that is not a regular file. */
  size(name: string): Promise<number | undefined>;
  /** All of `name`; refuses it (before reading) if it is larger than maxBytes. NotFoundError if absent. */
  read(name: string, maxBytes: number): Promise<Buffer>;
  /** Bytes [offset, offset+length) of `name`; refuses ranges beyond the file. */
  readRanges(name: string, ranges: readonly ByteRange[]): Promise<Buffer[]>;
  /** All of `name` as a stream of chunks (for a pages image too large to hold). */
  stream(name: string): AsyncIterable<Buffer>;
  /**
   * Optional: fetch these ranges in one go, so that later readRanges of them cost nothing. An
   * archive store reads the archive once for all of them instead of once per call.
   */
  prefetch?(wants: readonly { name: string; ranges: readonly ByteRange[] }[]): Promise<void>;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/** Largest protobuf image the decoder reads into memory (the largest seen on real checkpoints is under 1 MiB). */
export const MAX_IMAGE_BYTES = 64 * 1024 * 1024;

/** Largest byte range read from a pages image at once (a command line or an environment is at most a few MiB). */
export const MAX_RANGE_BYTES = 256 * 1024 * 1024;

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

export function checkImageName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new InvalidArgumentError(`CRIU image name ${JSON.stringify(name)} is not a plain file name`);
  }
}

export function checkRanges(what: string, size: number, ranges: readonly ByteRange[]): void {
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < 0 || r.length < 0) {
      throw new InvalidArgumentError(`${what}: invalid byte range ${r.offset}+${r.length}`);
    }
    if (r.length > MAX_RANGE_BYTES) throw new InvalidArgumentError(`${what}: range of ${r.length} bytes is over the ${MAX_RANGE_BYTES}-byte limit`);
    if (r.offset + r.length > size) {
      throw new InvalidArgumentError(`${what}: pages ${r.offset}..${r.offset + r.length} lie beyond the file's ${size} bytes`);
    }
  }
}

/** The images of a directory on disk. Nothing is followed: symlinks, FIFOs and devices are refused by name. */
export class DirImageStore implements ImageStore {
  constructor(readonly dir: string) {}

  describe(name: string): string {
    return path.join(this.dir, name);
  }

  async names(): Promise<string[]> {
    const entries = await fs.promises.readdir(this.dir, { withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  }

  private async lstat(name: string): Promise<fs.Stats | undefined> {
    checkImageName(name);
    try {
      return await fs.promises.lstat(path.join(this.dir, name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async size(name: string): Promise<number | undefined> {
    const st = await this.lstat(name);
    if (!st) return undefined;
    if (!st.isFile()) throw new InvalidArgumentError(`${this.describe(name)} is a ${fileTypeName(st)}, not a regular file; refusing it`);
    return st.size;
  }

  private async open(name: string): Promise<{ fh: fs.promises.FileHandle; size: number }> {
    const where = this.describe(name);
    const before = await this.lstat(name);
    if (!before) throw new NotFoundError(`${where} does not exist`);
    if (!before.isFile()) throw new InvalidArgumentError(`${where} is a ${fileTypeName(before)}, not a regular file; refusing it`);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(path.join(this.dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NotFoundError(`${where} does not exist`);
      if (code === 'ELOOP') throw new InvalidArgumentError(`${where} became a symlink; refusing to follow it`);
      throw err;
    }
    const st = await fh.stat();
    if (!st.isFile() || st.ino !== before.ino || st.dev !== before.dev) {
      await fh.close();
      throw new InvalidArgumentError(`${where} was replaced while being opened; refusing it`);
    }
    return { fh, size: st.size };
  }

  async read(name: string, maxBytes: number): Promise<Buffer> {
    const { fh, size } = await this.open(name);
    try {
      if (size > maxBytes) throw new InvalidArgumentError(`${this.describe(name)} is ${size} bytes, over the ${maxBytes}-byte limit`);
      const buf = Buffer.alloc(size);
      let len = 0;
      while (len < size) {
        const { bytesRead } = await fh.read(buf, len, size - len, len);
        if (bytesRead === 0) break;
        len += bytesRead;
      }
      // A file that shrank while being read is read as it is now; one that grew is cut at its fstat size.
      return buf.subarray(0, len);
    } finally {
      await fh.close();
    }
  }

  async *stream(name: string): AsyncIterable<Buffer> {
    const { fh, size } = await this.open(name);
    try {
      let pos = 0;
      while (pos < size) {
        const buf = Buffer.alloc(Math.min(1 << 20, size - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  async readRanges(name: string, ranges: readonly ByteRange[]): Promise<Buffer[]> {
    const { fh, size } = await this.open(name);
    try {
      checkRanges(this.describe(name), size, ranges);
      const out: Buffer[] = [];
      for (const r of ranges) {
        const buf = Buffer.alloc(r.length);
        let len = 0;
        while (len < r.length) {
          const { bytesRead } = await fh.read(buf, len, r.length - len, r.offset + len);
          if (bytesRead === 0) throw new InvalidArgumentError(`${this.describe(name)} shrank while being read`);
          len += bytesRead;
        }
        out.push(buf);
      }
      return out;
    } finally {
      await fh.close();
    }
  }
}
