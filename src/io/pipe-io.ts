// A process's stdio through real kernel pipes (never socketpairs: `echo hi > /dev/stdout`
// fails on a socket inside the container). The container gets one end of each pipe through
// runc; the shim copies between the other end and containerd's FIFOs (or, for a `file://` log
// URI, the log file: file-io.ts).
//
// Output copies close their destination when the pipe reaches EOF (every writer in the
// container has gone): containerd's client waits for that EOF before it deletes the task, so
// closing at the right moment is what makes output arrive whole.
import * as fs from 'node:fs';
import type * as net from 'node:net';
import type { Writable } from 'node:stream';
import { pipe2 } from '../sys/native';
import { closeAfterFlush, openInputFifo, openOutputFifo, pipeReader, pipeWriter } from './fifo';
import { deliveredUnlessHeld, type ProcessIO, type StdioPaths } from './process-io';
import { closeChildFds, type ChildFds } from './child-fds';

/**
 * Opens where an output copy writes, given the stdout/stderr path. containerd's FIFO by default;
 * when stdout and stderr name the same path it is opened once and closed after both copies.
 */
export type OutputOpener = (path: string) => Writable;

export class PipeIO implements ProcessIO {
  /** fds handed to runc as the container's 0/1/2 ('ignore' = /dev/null). */
  private childFds: ChildFds = ['ignore', 'ignore', 'ignore'];
  private stdinKeeper: number | null = null;
  private stdinWriter: net.Socket | null = null;
  private readonly copies: Promise<void>[] = [];
  /** Each output copy's pipe has reached EOF (or failed): its last bytes are on their way. */
  private readonly ends: Promise<void>[] = [];
  /** What the shim reads: the stdout and stderr pipes' read ends (in that order), then stdin's FIFO. */
  private readonly readers: net.Socket[] = [];
  private readonly toClose: Writable[] = [];

  private constructor(private readonly paths: StdioPaths, private readonly openOutput: OutputOpener) {}

  /** Creates the pipes. Nothing is copied (nor `openOutput` called) until start(). */
  static create(paths: StdioPaths, owner?: { uid: number; gid: number }, openOutput: OutputOpener = openOutputFifo): PipeIO {
    const io = new PipeIO(paths, openOutput);
    try {
      if (paths.stdin) {
        const [r, w] = pipe2({ cloexec: true });
        io.childFds[0] = r;
        io.stdinWriter = pipeWriter(w);
      }
      for (const n of [1, 2] as const) {
        const path = n === 1 ? paths.stdout : paths.stderr;
        if (!path) continue;
        const [r, w] = pipe2({ cloexec: true });
        if (owner) fs.fchownSync(w, owner.uid, owner.gid);
        io.childFds[n] = w;
        io.readers.push(pipeReader(r));
      }
      if (owner && typeof io.childFds[0] === 'number') fs.fchownSync(io.childFds[0], owner.uid, owner.gid);
    } catch (err) {
      io.close();
      throw err;
    }
    return io;
  }

  childStdio(): ChildFds {
    return this.childFds;
  }

  /** After runc has handed the child ends to the container, the shim must not hold them. */
  closeChildEnds(): void {
    closeChildFds(this.childFds);
  }

  /** Opens the outputs (containerd's FIFOs) and stdin's FIFO, and starts copying. */
  start(): void {
    const { stdin, stdout, stderr } = this.paths;
    let r = 0;
    const shared = stdout && stdout === stderr ? this.openOutput(stdout) : null;
    let pendingShared = 0;
    for (const path of [stdout, stderr]) {
      if (!path) continue;
      const reader = this.readers[r++]!;
      const fifo = shared ?? this.openOutput(path);
      if (shared) pendingShared++;
      else this.toClose.push(fifo);
      const copy = copyOutput(reader, fifo, () => {
        if (!shared) return true;
        return --pendingShared === 0;
      });
      this.copies.push(copy.done);
      this.ends.push(copy.ended);
    }
    if (shared) this.toClose.push(shared);
    if (stdin && this.stdinWriter) {
      const { reader, keeper } = openInputFifo(stdin);
      this.stdinKeeper = keeper;
      const writer = this.stdinWriter;
      this.readers.push(reader);
      this.toClose.push(writer);
      reader.pipe(writer, { end: false });
      reader.once('end', () => closeAfterFlush(writer));
      reader.on('error', () => writer.destroy());
      writer.on('error', () => reader.destroy());
    }
  }

  /** CloseIO(stdin): the process sees EOF once the client's data has been drained. */
  closeStdin(): void {
    if (this.stdinKeeper !== null) {
      fs.closeSync(this.stdinKeeper);
      this.stdinKeeper = null;
    } else if (this.stdinWriter) {
      closeAfterFlush(this.stdinWriter);
    }
  }

  /** Resolves when every output copy has finished, or after `timeoutMs`. */
  async waitCopied(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.copies),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
    ]);
    if (timer) clearTimeout(timer);
  }

  /**
   * Resolves once the output has reached containerd's client: every copy's pipe ended within
   * `eofTimeoutMs` and its FIFO was then read empty (closeAfterFlush bounds that). If a pipe
   * does not end in time (a process left behind still holds it), at once.
   */
  async outputDelivered(eofTimeoutMs: number): Promise<void> {
    await deliveredUnlessHeld(Promise.all(this.ends), Promise.all(this.copies), eofTimeoutMs);
  }

  close(): void {
    this.closeChildEnds();
    if (this.stdinKeeper !== null) {
      try { fs.closeSync(this.stdinKeeper); } catch { /* ignore */ }
      this.stdinKeeper = null;
    }
    for (const s of this.readers) s.destroy();
    for (const s of this.toClose) s.destroy();
    this.stdinWriter?.destroy();
  }
}

/**
 * Copies a pipe into a FIFO (or file); `last()` says whether this copy should close it.
 * `ended` resolves when the pipe has ended, `done` once the destination was closed after it.
 */
function copyOutput(reader: net.Socket, fifo: Writable, last: () => boolean): { ended: Promise<void>; done: Promise<void> } {
  let markEnded!: () => void;
  const ended = new Promise<void>((resolve) => { markEnded = resolve; });
  const done = new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      markEnded();
      if (finished) return;
      finished = true;
      reader.destroy();
      if (last()) {
        closeAfterFlush(fifo, resolve);
      } else {
        resolve();
      }
    };
    reader.on('data', (chunk: Buffer) => {
      if (!fifo.write(chunk)) {
        reader.pause();
        fifo.once('drain', () => reader.resume());
      }
    });
    reader.once('end', finish);
    reader.once('error', finish);
    fifo.once('error', () => { reader.destroy(); finished = true; markEnded(); resolve(); });
  });
  return { ended, done };
}
