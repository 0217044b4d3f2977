// A process's stdio through a terminal. runc creates the pty inside the container and sends us
// the master over --console-socket (SCM_RIGHTS); we copy master → stdout FIFO and stdin FIFO →
// master, and keep the master for ResizePty. Mirrors the Go shim's CopyConsole
// (runtime/v2/runc/platform.go): stderr is unused with a terminal, the stdout FIFO is closed
// when the terminal's output ends, and stdin reaching EOF (client closed + CloseIO) shuts the
// console down, which hangs up the terminal for the process.
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tty from 'node:tty';
import type { StdioOptions } from 'node:child_process';
import { dup, isErrnoError, listenUnix, receiveFd, setWinsize } from '../sys/native';
import { closeAfterFlush, openInputFifo, openOutputFifo } from './fifo';
import type { ProcessIO, StdioPaths } from './process-io';

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
  /** The pty master: read by `reader` (which owns and closes it). */
  private reader: tty.ReadStream | null = null;
  /** Our own dup of the master for writing stdin and for resizing; closed by close(). */
  private controlFd: number | null = null;
  private stdinReader: net.Socket | null = null;
  private stdinKeeper: number | null = null;
  private stdoutFifo: net.Socket | null = null;
  private shutDown = false;
  private readonly copied: Promise<void>;
  private resolveCopied!: () => void;

  private constructor(private readonly paths: StdioPaths, socketDir: string, listenFd: number) {
    this.socketDir = socketDir;
    this.listenFd = listenFd;
    this.copied = new Promise((resolve) => { this.resolveCopied = resolve; });
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
        this.controlFd = dup(fd);
        // tty.ReadStream puts the (shared) file description in O_NONBLOCK mode; our writes to
        // controlFd rely on that, so a process that never reads its terminal cannot block us.
        this.reader = new tty.ReadStream(fd);
        this.reader.pause();
      } catch (err) {
        if (this.controlFd !== null) fs.closeSync(this.controlFd);
        this.controlFd = null;
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
  childStdio(): StdioOptions {
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
    const endOutput = () => {
      if (ended) return;
      ended = true;
      reader.destroy();
      void this.drainAfterEnd((chunk) => { fifo?.write(chunk); }).then(() => {
        if (fifo) closeAfterFlush(fifo, () => this.resolveCopied());
        else this.resolveCopied();
      });
    };
    reader.on('data', (chunk: Buffer) => {
      if (fifo && !fifo.write(chunk)) {
        reader.pause();
        fifo.once('drain', () => reader.resume());
      }
    });
    reader.once('end', endOutput);
    // EIO once no process holds the terminal any more: that is the end of its output.
    reader.once('error', endOutput);
    reader.once('close', endOutput);
    fifo?.once('error', () => { ended = true; reader.destroy(); this.resolveCopied(); });
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
  private async drainAfterEnd(emit: (chunk: Buffer) => void): Promise<void> {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let idle = 0; idle < DRAIN_IDLE_TRIES;) {
      const fd = this.controlFd;
      if (fd === null) return;
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
  }

  /** Writes all of `data` to the terminal without blocking the event loop (retries on EAGAIN). */
  private async writeToTerminal(data: Buffer): Promise<void> {
    let offset = 0;
    let delay = WRITE_RETRY_MIN_MS;
    while (offset < data.length) {
      const fd = this.controlFd;
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
    if (this.controlFd === null) throw new Error('console is closed');
    setWinsize(this.controlFd, rows, cols);
  }

  /** CloseIO(stdin): once the client's data is drained the stdin copy ends and the console shuts down. */
  closeStdin(): void {
    if (this.stdinKeeper !== null) {
      fs.closeSync(this.stdinKeeper);
      this.stdinKeeper = null;
    }
  }

  /** Closes the master: the process's terminal is hung up and the output copy ends. */
  private shutdown(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    this.reader?.destroy();
    if (this.controlFd !== null) {
      try { fs.closeSync(this.controlFd); } catch { /* already closed */ }
      this.controlFd = null;
    }
  }

  /** Resolves when the terminal output was fully copied, or after `timeoutMs`. */
  async waitCopied(timeoutMs: number): Promise<void> {
    if (!this.stdoutFifo && !this.reader) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.copied, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
    if (timer) clearTimeout(timer);
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
