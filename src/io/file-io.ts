// `file:///path/to/log` stdio (`ctr run --log-uri file://…`), as containerd-shim-runc-v2 does
// it (pkg/process/io.go, scheme "file"): the parent directories are created (0755), the file is
// created if missing (0644), and the container's stdout and stderr — through real pipes, as
// for FIFOs — are both appended to it. The file is closed once both streams reached EOF.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as net from 'node:net';
import type { StdioOptions } from 'node:child_process';
import { pipe2 } from '../sys/native';
import { pipeReader } from './fifo';
import type { ProcessIO } from './process-io';

export class FileIO implements ProcessIO {
  private childFds: (number | 'ignore')[] = ['ignore', 'ignore', 'ignore'];
  private readonly readers: net.Socket[] = [];
  private file: fs.WriteStream | null = null;
  private copied: Promise<void> = Promise.resolve();

  private constructor(readonly filePath: string) {}

  static create(uri: URL, owner?: { uid: number; gid: number }): FileIO {
    const filePath = decodeURIComponent(uri.pathname);
    fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o755 });
    fs.closeSync(fs.openSync(filePath, fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o644));
    const io = new FileIO(filePath);
    try {
      for (const n of [1, 2] as const) {
        const [r, w] = pipe2({ cloexec: true });
        io.childFds[n] = w;
        io.readers.push(pipeReader(r));
        if (owner) fs.fchownSync(w, owner.uid, owner.gid);
      }
    } catch (err) {
      io.close();
      throw err;
    }
    return io;
  }

  childStdio(): StdioOptions {
    return this.childFds;
  }

  closeChildEnds(): void {
    for (let i = 0; i < 3; i++) {
      const fd = this.childFds[i];
      if (typeof fd === 'number') {
        try { fs.closeSync(fd); } catch { /* already closed */ }
      }
      this.childFds[i] = 'ignore';
    }
  }

  /** Appends both streams to the one file (O_APPEND: concurrent writers never overwrite). */
  start(): void {
    const file = fs.createWriteStream(this.filePath, { flags: 'a' });
    this.file = file;
    file.on('error', () => { for (const r of this.readers) r.destroy(); });
    const copies = this.readers.map((reader) => new Promise<void>((resolve) => {
      reader.on('data', (chunk: Buffer) => {
        if (!file.write(chunk)) {
          reader.pause();
          file.once('drain', () => reader.resume());
        }
      });
      reader.once('end', () => resolve());
      reader.once('error', () => resolve());
      reader.once('close', () => resolve());
    }));
    this.copied = Promise.all(copies).then(() => new Promise<void>((resolve) => {
      if (file.destroyed) resolve();
      else file.end(() => resolve());
    }));
  }

  closeStdin(): void { /* a log URI carries no stdin */ }

  async waitCopied(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.copied,
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
    ]);
    if (timer) clearTimeout(timer);
  }

  close(): void {
    this.closeChildEnds();
    for (const r of this.readers) r.destroy();
    if (this.file && !this.file.writableEnded) this.file.end();
  }
}
