// A task's stdout and stderr, attached to ours as `ctr run` does it (containerd's cio): FIFOs
// in a private directory, named in Tasks.Create, read here and copied to our own streams.
// FIFO rules (NOTES.md): read through net.Socket (epoll), never a threadpool stream. Opening:
// a FIFO whose only reader opened O_NONBLOCK reads EOF at once while no writer exists, so a
// second fd O_RDWR holds it open until the shim has opened its end (after Tasks.Create); then it
// is closed, and EOF comes when the shim closes its end.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { mkfifo } from '../../sys/native';
import type { Writable } from '../context';

const { O_RDONLY, O_RDWR, O_NONBLOCK } = fs.constants;

interface Pipe {
  path: string;
  hold: number | undefined;
  socket: net.Socket;
  ended: Promise<void>;
}

export class AttachedIO {
  private readonly pipes: Pipe[] = [];

  private constructor(readonly dir: string) {}

  /** FIFOs for stdout and stderr in a new 0700 directory under `parent`, copied to `out`/`err`. */
  static async open(parent: string, name: string, out: Writable, err: Writable): Promise<AttachedIO> {
    await fs.promises.mkdir(parent, { recursive: true, mode: 0o700 });
    const dir = await fs.promises.mkdtemp(path.join(parent, `${name}-`));
    const io = new AttachedIO(dir);
    try {
      for (const [stream, to] of [['stdout', out], ['stderr', err]] as const) io.pipes.push(io.pipe(path.join(dir, stream), to));
    } catch (e) {
      await io.close();
      throw e;
    }
    return io;
  }

  private pipe(p: string, to: Writable): Pipe {
    mkfifo(p, 0o600);
    const hold = fs.openSync(p, O_RDWR | O_NONBLOCK);
    const fd = fs.openSync(p, O_RDONLY | O_NONBLOCK);
    const socket = new net.Socket({ fd, readable: true, writable: false });
    socket.on('data', (chunk: Buffer) => to.write(chunk));
    const ended = new Promise<void>((resolve) => {
      socket.once('end', () => resolve());
      socket.once('close', () => resolve());
      socket.once('error', () => resolve());
    });
    return { path: p, hold, socket, ended };
  }

  get stdout(): string { return this.pipes[0]!.path; }
  get stderr(): string { return this.pipes[1]!.path; }

  /** The shim has opened its ends: from now on EOF means it closed them. */
  released(): void {
    for (const p of this.pipes) {
      if (p.hold !== undefined) fs.closeSync(p.hold);
      p.hold = undefined;
    }
  }

  /** Waits for both streams to end (the shim closed them), at most `timeoutMs`. */
  async drained(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.pipes.map((p) => p.ended)),
      new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); }),
    ]);
    if (timer) clearTimeout(timer);
  }

  async close(): Promise<void> {
    this.released();
    for (const p of this.pipes) p.socket.destroy();
    await fs.promises.rm(this.dir, { recursive: true, force: true });
  }
}
