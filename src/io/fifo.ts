// Opening containerd's stdio FIFOs without ever blocking the event loop, and wrapping fds in
// net.Socket: libuv then drives them with epoll. (fs.createReadStream would park a threadpool
// thread per idle stream and eventually stall the whole process.)
import * as fs from 'node:fs';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { InvalidArgumentError } from '../errors';
import { queuedBytes } from '../sys/native';

const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, O_NOFOLLOW } = fs.constants;

/**
 * Opens `path` only if it is a FIFO: never through a symlink (O_NOFOLLOW), never a regular file
 * or device (O_RDWR on a file would let container output overwrite it). The request checks
 * (src/service/request-checks.ts) refuse such paths first; this holds if one is swapped in after.
 */
function openFifo(path: string, flags: number): number {
  const fd = fs.openSync(path, flags | O_NOFOLLOW);
  if (!fs.fstatSync(fd).isFIFO()) {
    fs.closeSync(fd);
    throw new InvalidArgumentError(`${JSON.stringify(path)} is not a FIFO`);
  }
  return fd;
}

/**
 * Opens an output FIFO (stdout/stderr) for writing — once its reader, containerd's client, has
 * opened it. The client opens its readers in goroutines of its own; a shim that wrote and
 * closed the FIFO before they got there would leave its output in a pipe nobody ever reads
 * (the Go shim's blocking O_WRONLY open waits for them). So: O_WRONLY|O_NONBLOCK tells whether
 * a reader is there (ENXIO if not). When one is, the same FIFO is reopened O_RDWR, which never
 * blocks and keeps it open when the client goes away (`ctr run -d` exits; `ctr task attach`
 * later reads what was buffered). When none is yet, the returned stream holds what is written
 * (up to its high-water mark, then the copy pauses and the container's pipe fills) and tries
 * again with a growing pause, until it can open or is destroyed.
 */
export function openOutputFifo(path: string): Writable {
  const fd = openOutputIfRead(path);
  return fd === null ? new OutputAwaitingReader(path) : outputSocket(fd);
}

/** The FIFO opened read-write if it has a reader, or null (ENXIO). Throws as openFifo does. */
function openOutputIfRead(path: string): number | null {
  let probe: number;
  try {
    probe = openFifo(path, O_WRONLY | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') return null;
    throw err;
  }
  try {
    // The inode already checked, not the path again (it could have been swapped meanwhile).
    return fs.openSync(`/proc/self/fd/${probe}`, O_RDWR | O_NONBLOCK);
  } finally {
    fs.closeSync(probe);
  }
}

/**
 * What closeAfterFlush asks of an output FIFO: its fd, or null while it is not open or once it
 * was destroyed (closing it could free the number for another file).
 */
const outputFds = new WeakMap<Writable, () => number | null>();

function outputSocket(fd: number): net.Socket {
  const socket = new net.Socket({ fd, readable: false, writable: true });
  outputFds.set(socket, () => (socket.destroyed ? null : fd));
  return socket;
}

/** Pauses between attempts to open an output FIFO that has no reader yet. */
const READER_RETRY_FIRST_MS = 1;
const READER_RETRY_MAX_MS = 200;

/** An output FIFO whose reader has not opened it yet (openOutputFifo). */
class OutputAwaitingReader extends Writable {
  private socket: net.Socket | null = null;
  private pending: { chunk: Buffer; done: (err?: Error | null) => void } | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly path: string, private retryMs = READER_RETRY_FIRST_MS) {
    super();
    outputFds.set(this, () => (this.socket ? outputFds.get(this.socket)!() : null));
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.attempt(), this.retryMs);
    this.timer.unref();
    this.retryMs = Math.min(this.retryMs * 2, READER_RETRY_MAX_MS);
  }

  private attempt(): void {
    this.timer = null;
    let fd: number | null;
    try {
      fd = openOutputIfRead(this.path);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (fd === null) { this.schedule(); return; }
    const socket = outputSocket(fd);
    this.socket = socket;
    socket.on('error', (err) => this.destroy(err));
    const waiting = this.pending;
    this.pending = null;
    if (waiting) socket.write(waiting.chunk, waiting.done);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.socket) this.socket.write(chunk, done);
    else this.pending = { chunk, done };
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.socket?.destroy();
    done(err);
  }
}

/**
 * Opens the stdin FIFO for reading. A FIFO read end sees EOF as soon as it has no writer, so we
 * also hold a writer of our own ("keeper") until CloseIO: the reader then sees EOF exactly when
 * the client has closed its side AND asked us to close stdin, after all buffered data was read.
 */
export function openInputFifo(path: string): { reader: net.Socket; keeper: number } {
  const readFd = openFifo(path, O_RDONLY | O_NONBLOCK);
  let keeper: number;
  try {
    keeper = openFifo(path, O_WRONLY | O_NONBLOCK);
  } catch (err) {
    fs.closeSync(readFd);
    throw err;
  }
  return { reader: new net.Socket({ fd: readFd, readable: true, writable: false }), keeper };
}

/** Wraps the shim's end of a pipe. */
export function pipeReader(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: false });
}
export function pipeWriter(fd: number): net.Socket {
  return new net.Socket({ fd, readable: false, writable: true });
}

/**
 * Closes a pipe/FIFO writer (or a log file's stream) once everything queued has been written.
 * (Socket.end() would try shutdown(SHUT_WR), which a pipe does not support; closing the fd is
 * the pipe's EOF.) An output FIFO is closed once its reader has taken what it holds, too.
 */
export function closeAfterFlush(writer: Writable, done?: () => void): void {
  const close = () => { writer.destroy(); done?.(); };
  if (writer.destroyed) { done?.(); return; }
  const flushed = () => {
    const fdOf = outputFds.get(writer);
    if (fdOf) whenRead(fdOf, close);
    else close();
  };
  if (writer.writableLength === 0) flushed();
  else writer.write(Buffer.alloc(0), flushed);
}

/** How long an output FIFO may hold unread bytes without its reader taking any... */
const READ_STALL_MS = 100;
/**
 * ...counting at most this much of each pause between two looks: while the daemon itself was
 * held up (a full GC, a long synchronous step) the reader was not given its chance to be seen.
 */
const READ_LOOK_GAP_MS = 5;
/** How long a reader that keeps reading may take in all. */
const READ_LIMIT_MS = 2000;

/**
 * Calls `then` once the output FIFO's buffer is empty: containerd's client closes its readers
 * as soon as the task's exit reaches it (Task.Delete cancels its IO first), and what it has not
 * read by then is lost. Bounded: a client that has gone, or never reads, stops taking bytes,
 * and after READ_STALL_MS of that the FIFO is closed all the same (a reader that still has it
 * open can read the rest; with none, nobody would have).
 */
function whenRead(fdOf: () => number | null, then: () => void): void {
  const started = Date.now();
  let last = Infinity;
  let idleMs = 0;
  let previousLook = started;
  const check = () => {
    const fd = fdOf();
    let queued = 0;
    if (fd !== null) {
      try { queued = queuedBytes(fd); } catch { queued = 0; }
    }
    const now = Date.now();
    if (queued < last) { last = queued; idleMs = 0; } else idleMs += Math.min(now - previousLook, READ_LOOK_GAP_MS);
    previousLook = now;
    if (queued === 0 || idleMs >= READ_STALL_MS || now - started >= READ_LIMIT_MS) { then(); return; }
    setTimeout(check, 1);
  };
  check();
}
