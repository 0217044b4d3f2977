// A process's stdio through a terminal. runc creates the pty inside the container and sends us
// the master over --console-socket (SCM_RIGHTS); we copy master → stdout FIFO and stdin FIFO →
// master, and keep the master for ResizePty. Mirrors the Go shim's CopyConsole
// (runtime/v2/runc/platform.go): stderr is unused with a terminal, the stdout FIFO is closed
// when the terminal's output ends, and stdin reaching EOF (client closed + CloseIO) shuts the
// console down, which hangs up the terminal for the process. Like the Go shim, one descriptor
// of the master is held while the process runs, and none once it has exited and its output is
// drained (containerd's CRI test for TTY leaks counts them).
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ReadStream as TtyReadStream } from 'node:tty';
import type { Writable } from 'node:stream';
import { tty } from '../loader/on-first-use';
import { dup, isErrnoError, listenUnix, receiveFd, setWinsize } from '../sys/native';
import { closeAfterFlush, openInputFifo, openOutputFifo } from './fifo';
import { deliveredUnlessHeld, type ProcessIO, type StdioPaths } from './process-io';
import type { ChildFds } from './child-fds';

/** How long we wait for runc's pty master once runc create/exec has returned (Go shim: 30 s). */
export const CONSOLE_RECEIVE_TIMEOUT_MS = 30000;

/** Backoff bounds while the terminal's input queue is full (the process is not reading). */
/** Draining the master after its read side ended: retries while nothing comes, and their pace. */
const DRAIN_IDLE_TRIES = 200;
const DRAIN_RETRY_MS = 5;
const WRITE_RETRY_MIN_MS = 1;
const WRITE_RETRY_MAX_MS = 50;

export class ConsoleIO implements ProcessIO {
  /** Private 0700 directory holding the console socket (mkdtemp creates it 0700). */
  private socketDir: string | null;
  private listenFd: number | null;
  /**
   * The pty master, owned by `reader` (which closes it when destroyed). Writes to stdin and
   * resizes use the same descriptor, while the reader lives: see master().
   */
  private reader: TtyReadStream | null = null;
  private masterFd: number | null = null;
  private stdinReader: net.Socket | null = null;
  private stdinKeeper: number | null = null;
  private stdoutFifo: Writable | null = null;
  /** A copy of the master, held only while the output is drained after the read side ended. */
  private drainFd: number | null = null;
  private shutDown = false;
  private readonly copied: Promise<void>;
  private resolveCopied!: () => void;
  /** The terminal's output has ended (and been drained): what is left is on its way to the FIFO. */
  private readonly outputEnded: Promise<void>;
  private resolveOutputEnded!: () => void;

  private constructor(private readonly paths: StdioPaths, socketDir: string, listenFd: number) {
    this.socketDir = socketDir;
    this.listenFd = listenFd;
    this.copied = new Promise((resolve) => { this.resolveCopied = resolve; });
    this.outputEnded = new Promise((resolve) => { this.resolveOutputEnded = resolve; });
  }

  /** Creates the console socket (listening) for runc's --console-socket. */
  static create(paths: StdioPaths): ConsoleIO {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-pty-'));
    try {
      return new ConsoleIO(paths, dir, listenUnix(path.join(dir, 'console.sock')));
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The path to give runc as --console-socket. */
  get socketPath(): string {
    if (!this.socketDir) throw new Error('console socket already closed');
    return path.join(this.socketDir, 'console.sock');
  }

  /**
   * Takes the pty master runc sent. Call it after runc create/exec returned successfully: runc
   * has connected and sent by then, and the connection waits in the listen backlog, so nothing
   * is left polling if runc failed. The socket and its directory are removed afterwards.
   */
  async receiveMaster(timeoutMs = CONSOLE_RECEIVE_TIMEOUT_MS): Promise<void> {
    if (this.listenFd === null) throw new Error('console socket already closed');
    try {
      const { fd } = await receiveFd(this.listenFd, timeoutMs);
      try {
        // tty.ReadStream puts the file description in O_NONBLOCK mode; our writes to the master
        // rely on that, so a process that never reads its terminal cannot block us. (libuv
        // reads a pty master through the descriptor it is given; it reopens only slaves.)
        this.reader = new (tty().ReadStream)(fd);
        this.masterFd = fd;
        this.reader.pause();
      } catch (err) {
        this.reader = null;
        fs.closeSync(fd);
        throw err;
      }
    } catch (err) {
      throw new Error(`failed to retrieve console master: ${(err as Error).message}`, { cause: err });
    } finally {
      this.closeSocket();
    }
  }

  /** runc gets no stdio for a terminal process: the pty is its stdio. */
  childStdio(): ChildFds {
    return ['ignore', 'ignore', 'ignore'];
  }

  closeChildEnds(): void { /* nothing is handed to runc but the socket path */ }

  /** Opens containerd's FIFOs and starts copying. receiveMaster() must have succeeded. */
  start(): void {
    const reader = this.reader;
    if (!reader) throw new Error('console: no pty master received');
    this.stdoutFifo = this.paths.stdout ? openOutputFifo(this.paths.stdout) : null;
    const fifo = this.stdoutFifo;
    let ended = false;
    const finish = () => {
      this.resolveOutputEnded();
      if (fifo) closeAfterFlush(fifo, () => this.resolveCopied());
      else this.resolveCopied();
    };
    // read() returned 0: the reader is still open here (it is destroyed after 'end'), so keep
    // a descriptor of our own to drain what the kernel still holds (see drainAfterEnd).
    reader.once('end', () => {
      if (ended) return;
      ended = true;
      let drainFd: number | null = null;
      try { drainFd = dup(this.master() ?? -1); } catch { /* already closed */ }
      reader.destroy();
      void this.drainAfterEnd(drainFd, (chunk) => { fifo?.write(chunk); }).then(finish);
    });
    // EIO once no process holds the terminal any more and all it wrote was read (the kernel
    // returns EIO only with nothing left); or we destroyed the reader (shutdown).
    const endOutput = () => {
      if (ended) return;
      ended = true;
      reader.destroy();
      finish();
    };
    reader.on('data', (chunk: Buffer) => {
      if (fifo && !fifo.write(chunk)) {
        reader.pause();
        fifo.once('drain', () => reader.resume());
      }
    });
    reader.once('error', endOutput);
    reader.once('close', endOutput);
    fifo?.once('error', () => { ended = true; reader.destroy(); this.resolveOutputEnded(); this.resolveCopied(); });
    reader.resume();

    if (this.paths.stdin) {
      const { reader: input, keeper } = openInputFifo(this.paths.stdin);
      this.stdinReader = input;
      this.stdinKeeper = keeper;
      input.on('data', (chunk: Buffer) => {
        input.pause();
        this.writeToTerminal(chunk).then(() => input.resume(), () => { input.destroy(); this.shutdown(); });
      });
      // As the Go shim does when its stdin copy ends: shut the console down.
      input.once('end', () => this.shutdown());
      input.once('error', () => this.shutdown());
    }
  }

  /**
   * The master's read side can end (read() returns 0 while the kernel hangs the terminal up,
   * or EIO) before everything the process wrote has been read: seen here as `seq 1 3000; exit`
   * losing its last KiB. As containerd's epoll console treats those as temporary, keep reading
   * through our own descriptor of the master until EIO says the other side is closed and
   * nothing is left, bounded in case the process still holds the terminal.
   */
  private async drainAfterEnd(fd: number | null, emit: (chunk: Buffer) => void): Promise<void> {
    if (fd === null) return;
    this.drainFd = fd;
    const buf = Buffer.allocUnsafe(64 * 1024);
    try {
      for (let idle = 0; idle < DRAIN_IDLE_TRIES && this.drainFd === fd;) {
        let n = 0;
        try {
          n = fs.readSync(fd, buf, 0, buf.length, null);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return; // EIO: all read
        }
        if (n > 0) {
          emit(Buffer.from(buf.subarray(0, n)));
          idle = 0;
        } else {
          idle++;
          await new Promise((r) => setTimeout(r, DRAIN_RETRY_MS));
        }
      }
    } finally {
      this.closeDrainFd(fd);
    }
  }

  /** The drain's descriptor is closed when the drain ends, or earlier by shutdown(). */
  private closeDrainFd(fd: number): void {
    if (this.drainFd !== fd) return;
    this.drainFd = null;
    try { fs.closeSync(fd); } catch { /* already closed */ }
  }

  /** The master's descriptor while the reader (its owner) is open; null once it was closed. */
  private master(): number | null {
    return this.reader && !this.reader.destroyed ? this.masterFd : null;
  }

  /** Writes all of `data` to the terminal without blocking the event loop (retries on EAGAIN). */
  private async writeToTerminal(data: Buffer): Promise<void> {
    let offset = 0;
    let delay = WRITE_RETRY_MIN_MS;
    while (offset < data.length) {
      const fd = this.master();
      if (fd === null) throw new Error('console closed');
      try {
        offset += fs.writeSync(fd, data, offset, data.length - offset);
        delay = WRITE_RETRY_MIN_MS;
      } catch (err) {
        if (!isErrnoError(err, 'EAGAIN') && (err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, WRITE_RETRY_MAX_MS);
      }
    }
  }

  /** ResizePty: sets the terminal's window size (rows = height, cols = width). */
  resize(rows: number, cols: number): void {
    const fd = this.master();
    if (fd === null) throw new Error('console is closed');
    setWinsize(fd, rows, cols);
  }

  /** CloseIO(stdin): once the client's data is drained the stdin copy ends and the console shuts down. */
  closeStdin(): void {
    if (this.stdinKeeper !== null) {
      fs.closeSync(this.stdinKeeper);
      this.stdinKeeper = null;
    }
  }

  /** Closes the master (and a drain's copy): the terminal is hung up, the output copy ends. */
  private shutdown(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    this.reader?.destroy();
    if (this.drainFd !== null) this.closeDrainFd(this.drainFd);
  }

  /**
   * The process has exited: once its output is drained (bounded: a process it left behind may
   * still hold the terminal), the master is closed, as the Go shim shuts its console down at
   * exit — not only at Delete, which may come much later.
   */
  processExited(drainTimeoutMs: number): void {
    if (this.shutDown) return;
    void this.waitCopied(drainTimeoutMs).then(() => this.shutdown());
  }

  /** Resolves when the terminal output was fully copied, or after `timeoutMs`. */
  async waitCopied(timeoutMs: number): Promise<void> {
    if (!this.stdoutFifo && !this.reader) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.copied, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
    if (timer) clearTimeout(timer);
  }

  /**
   * Resolves once the terminal's output has reached containerd's client: it ended within
   * `eofTimeoutMs` and the FIFO was then read empty (closeAfterFlush bounds that); at once if it
   * does not end in time (a process left behind still holds the terminal).
   */
  async outputDelivered(eofTimeoutMs: number): Promise<void> {
    if (this.stdoutFifo) await deliveredUnlessHeld(this.outputEnded, this.copied, eofTimeoutMs);
  }

  close(): void {
    this.closeSocket();
    this.shutdown();
    if (this.stdinKeeper !== null) {
      try { fs.closeSync(this.stdinKeeper); } catch { /* ignore */ }
      this.stdinKeeper = null;
    }
    this.stdinReader?.destroy();
    this.stdoutFifo?.destroy();
  }

  private closeSocket(): void {
    if (this.listenFd !== null) {
      try { fs.closeSync(this.listenFd); } catch { /* ignore */ }
      this.listenFd = null;
    }
    if (this.socketDir !== null) {
      fs.rmSync(this.socketDir, { recursive: true, force: true });
      this.socketDir = null;
    }
  }
}

/** The ConsoleIO behind a process's IO, if it has a terminal. */
export function consoleOf(io: ProcessIO | null | undefined): ConsoleIO | null {
  return io instanceof ConsoleIO ? io : null;
}
