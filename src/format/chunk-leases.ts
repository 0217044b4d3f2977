// Reuse of the memory of decompressed chunks, only once nothing refers to it any more.
//
// The zstd worker (zstd-file-worker.ts) hands its output chunks to the main thread by
// transferring their memory. Allocating a fresh 1 MiB chunk per step cost 50-70 ms of CPU per
// 256 MiB staged (page faults on fresh memory, then freeing it), so the main thread hands each
// chunk's memory back for the worker to decompress into again. That is only safe once every
// user of the chunk is done with it: the tar reader (until it has handed out its last byte and
// been called again) and every write still in flight from a slice of it (BackgroundWrites, run in
// libuv's threadpool). A chunk that was handed back too early would be overwritten by the worker
// while a write copies it into a staged file: a corrupt image that CRIU would restore.
//
// So each chunk has a reference count: one reference for the reader from lend() to
// readerDone(), one per retain() until its release function is called. At zero, and only then,
// the memory goes back (transferred, which detaches every view of it on this thread: a view kept
// by mistake reads as empty rather than as the worker's next output). After close() nothing is
// handed back: the worker is gone, the memory is left to the garbage collector.

/** Keeps the memory of `buf` (a chunk or a slice of one) from reuse until the returned function is called. */
export interface ChunkRetainer {
  retain(buf: Buffer): () => void;
}

export class ChunkLeases implements ChunkRetainer {
  private readonly refs = new Map<ArrayBuffer, number>();
  private closed = false;

  /** `reuse` gets each chunk's memory once nothing refers to it. */
  constructor(private readonly reuse: (memory: ArrayBuffer) => void) {}

  /** `chunk` (a view of all or the start of its own ArrayBuffer) goes to the reader: its first reference. */
  lend(chunk: Buffer): void {
    if (chunk.byteOffset !== 0 || this.refs.has(chunk.buffer as ArrayBuffer)) {
      throw new Error('ChunkLeases.lend: a chunk must own its memory and be lent once');
    }
    this.refs.set(chunk.buffer as ArrayBuffer, 1);
  }

  /** The reader holds no part of `chunk` any more (what it handed out was retained by whoever keeps it). */
  readerDone(chunk: Buffer): void {
    this.drop(chunk.buffer as ArrayBuffer);
  }

  retain(buf: Buffer): () => void {
    const memory = buf.buffer as ArrayBuffer;
    const n = this.refs.get(memory);
    // Not a lent chunk (a copy, a header, another source): nothing to hold.
    if (n === undefined) return () => undefined;
    this.refs.set(memory, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.drop(memory);
    };
  }

  /** Chunks lent and not yet handed back (for tests and bounds). */
  get outstanding(): number {
    return this.refs.size;
  }

  /** From now on no memory is handed back (the worker stopped). */
  close(): void {
    this.closed = true;
    this.refs.clear();
  }

  private drop(memory: ArrayBuffer): void {
    const n = this.refs.get(memory);
    if (n === undefined) return;
    if (n > 1) {
      this.refs.set(memory, n - 1);
      return;
    }
    this.refs.delete(memory);
    if (!this.closed) this.reuse(memory);
  }
}
