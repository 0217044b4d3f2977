// Where the files of a CRIU image directory come from: a directory on disk, or the checkpoint/
// part of an archive read as a stream (checkpoint-source.ts). The decoder asks only for whole
// small images (bounded) and for byte ranges of the raw pages images, so neither kind of store
// ever has to hold a pages file in memory or unpack it to disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../errors';
import { fileTypeName } from '../file-type';
import { lstatIfPresent, openRegularFile, readFdInto, type OpenedRegularFile } from '../open-regular';

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

  // Metadata and small reads are synchronous (open-regular.ts says why); only a pages image,
  // read in ranges or streamed for `ferry inspect`, is read in slices with turns between them.
  async names(): Promise<string[]> {
    const entries = fs.readdirSync(this.dir, { withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  }

  async size(name: string): Promise<number | undefined> {
    checkImageName(name);
    const st = lstatIfPresent(path.join(this.dir, name));
    if (!st) return undefined;
    if (!st.isFile()) throw new InvalidArgumentError(`${this.describe(name)} is a ${fileTypeName(st)}, not a regular file; refusing it`);
    return st.size;
  }

  private open(name: string): OpenedRegularFile {
    checkImageName(name);
    return openRegularFile(path.join(this.dir, name), this.describe(name));
  }

  async read(name: string, maxBytes: number): Promise<Buffer> {
    const { fd, st } = this.open(name);
    try {
      if (st.size > maxBytes) throw new InvalidArgumentError(`${this.describe(name)} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
      const buf = Buffer.alloc(st.size);
      // A file that shrank while being read is read as it is now; one that grew is cut at its fstat size.
      const len = await readFdInto(fd, buf, 0, st.size, 0);
      return buf.subarray(0, len);
    } finally {
      fs.closeSync(fd);
    }
  }

  async *stream(name: string): AsyncIterable<Buffer> {
    const { fd, st } = this.open(name);
    try {
      let pos = 0;
      while (pos < st.size) {
        const buf = Buffer.alloc(Math.min(1 << 20, st.size - pos));
        const bytesRead = await readFdInto(fd, buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  async readRanges(name: string, ranges: readonly ByteRange[]): Promise<Buffer[]> {
    const { fd, st } = this.open(name);
    try {
      checkRanges(this.describe(name), st.size, ranges);
      const out: Buffer[] = [];
      for (const r of ranges) {
        const buf = Buffer.alloc(r.length);
        if (await readFdInto(fd, buf, 0, r.length, r.offset) < r.length) {
          throw new InvalidArgumentError(`${this.describe(name)} shrank while being read`);
        }
        out.push(buf);
      }
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }
}
