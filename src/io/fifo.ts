// Opening containerd's stdio FIFOs without ever blocking the event loop, and wrapping fds in
// net.Socket: libuv then drives them with epoll. (fs.createReadStream would park a threadpool
// thread per idle stream and eventually stall the whole process.)
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Writable } from 'node:stream';
import { InvalidArgumentError } from '../errors';

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
 * Opens an output FIFO (stdout/stderr) for writing. O_RDWR never blocks, whether or not the
 * reader (containerd's client) has opened it yet; closing our fd is what gives the reader EOF.
 */
export function openOutputFifo(path: string): net.Socket {
  const fd = openFifo(path, O_RDWR | O_NONBLOCK);
  return new net.Socket({ fd, readable: false, writable: true });
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
 * the pipe's EOF.)
 */
export function closeAfterFlush(writer: Writable, done?: () => void): void {
  const close = () => { writer.destroy(); done?.(); };
  if (writer.destroyed) { done?.(); return; }
  if (writer.writableLength === 0) close();
  else writer.write(Buffer.alloc(0), close);
}
