// Random access to an archive's raw bytes, and the chunk iterator the tar reader reads it with
// (skipping bulk bodies without reading them). Used by checkpoint-source.ts (inspect reads an
// uncompressed archive in place) and archive-staging.ts (staging copies an uncompressed
// archive's file bodies inside the kernel, straight from the archive's fd).
import type * as fs from 'node:fs';
import type { SkippableIterator } from './tar-reader';

/** Random access to an archive's raw bytes (a file; a blob of containerd's content store). */
export interface RandomAccess {
  size: number;
  /** `len` bytes at `pos`, fewer only where the input ends. */
  read(pos: number, len: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** A RandomAccess over an open file of `size` bytes; close() closes the handle. */
export function fileRandomAccess(fh: fs.promises.FileHandle, size: number): RandomAccess {
  return {
    size,
    async read(pos, len) {
      const buf = Buffer.allocUnsafe(Math.max(0, Math.min(len, size - pos)));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    },
    close: () => fh.close(),
  };
}

const SMALL_READ = 64 * 1024;
/** The largest read: chunk size once reading goes on, and for streaming a file in place. */
export const LARGE_READ = 1024 * 1024;

/**
 * Chunks of a RandomAccess from the start, for the tar reader: small reads after a skip (the
 * next header), growing while it reads on; skips move the position without reading.
 */
export class RandomAccessIterator implements SkippableIterator {
  private pos = 0;
  private chunk = SMALL_READ;

  constructor(private readonly ra: RandomAccess) {}

  async next(): Promise<IteratorResult<Buffer>> {
    if (this.pos >= this.ra.size) return { done: true, value: undefined };
    const b = await this.ra.read(this.pos, this.chunk);
    if (b.length === 0) return { done: true, value: undefined };
    this.pos += b.length;
    this.chunk = Math.min(this.chunk * 4, LARGE_READ);
    return { done: false, value: b };
  }

  skip(n: number): boolean {
    if (this.pos + n > this.ra.size) return false;
    this.pos += n;
    this.chunk = SMALL_READ;
    return true;
  }
}
