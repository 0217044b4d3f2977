// Writes of one file's chunks through libuv's threadpool, several in flight, so that staging a
// compressed archive decompresses the next chunk on the main thread while the last ones are
// copied into the page cache on another core (GNU tar gets the same overlap from running gzip
// or zstd as a second process).
import * as fs from 'node:fs';
import type { ChunkRetainer } from './chunk-leases';

function writeAt(fd: number, buf: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const more = (off: number): void => {
      fs.write(fd, buf, off, buf.length - off, position + off, (err, n) => {
        if (err) reject(err);
        else if (off + n < buf.length) more(off + n);
        else resolve();
      });
    };
    more(0);
  });
}

/**
 * Positional writes to `fd` from its start, one after another in file order but not waited for:
 * at most `maxPendingBytes` in flight (at least one write). The caller must not change a buffer
 * it passed to write() until that write is done: with `chunks`, each buffer is retained there
 * from write() until its write has finished or failed (a decompressor reuses the memory after
 * that). The caller must call settle() before it closes the fd, whatever happened: a write
 * landing after close() could hit a reused fd.
 */
export class BackgroundWrites {
  private readonly pending = new Set<Promise<void>>();
  private pendingBytes = 0;
  private position = 0;
  private error: unknown;

  constructor(
    private readonly fd: number,
    private readonly maxPendingBytes: number,
    private readonly chunks?: ChunkRetainer,
  ) {}

  /** Queues `chunk` after what was queued before; throws an earlier write's failure. */
  async write(chunk: Buffer): Promise<void> {
    // Held from here: the caller may call its reader again while this waits for room.
    const release = this.chunks?.retain(chunk);
    try {
      while (this.pending.size > 0 && this.pendingBytes + chunk.length > this.maxPendingBytes) await Promise.race(this.pending);
      this.throwError();
    } catch (err) {
      release?.();
      throw err;
    }
    const size = chunk.length;
    this.pendingBytes += size;
    const w: Promise<void> = writeAt(this.fd, chunk, this.position)
      .catch((err: unknown) => { this.error ??= err; })
      .finally(() => {
        this.pending.delete(w);
        this.pendingBytes -= size;
        // Only now is the threadpool done with the chunk's memory.
        release?.();
      });
    this.pending.add(w);
    this.position += size;
  }

  /** Waits for every write; throws the first failure. */
  async flush(): Promise<void> {
    await this.settle();
    this.throwError();
  }

  /** Waits for every write, failed or not. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private throwError(): void {
    if (this.error !== undefined) throw this.error;
  }
}
