// `file:///path/to/log` stdio (`ctr run --log-uri file://…`). As containerd-shim-runc-v2 does,
// the parent directories are created (0755) and the file is created if missing (0644), and the
// container's stdout and stderr both go to it. Unlike the Go shim, which copies two pipes into
// the file (so a line of one stream can be cut by a chunk of the other), the container gets the
// file itself, opened O_APPEND, as its fds 1 and 2: every write the container makes is one
// atomic append, both streams keep their order, and the shim copies nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StdioOptions } from 'node:child_process';
import type { ProcessIO } from './process-io';

export class FileIO implements ProcessIO {
  private fd: number | null;

  private constructor(readonly filePath: string, fd: number) {
    this.fd = fd;
  }

  static create(uri: URL, owner?: { uid: number; gid: number }): FileIO {
    const filePath = decodeURIComponent(uri.pathname);
    fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o755 });
    const existed = fs.existsSync(filePath);
    const fd = fs.openSync(filePath, fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o644);
    try {
      if (owner && !existed) fs.fchownSync(fd, owner.uid, owner.gid);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new FileIO(filePath, fd);
  }

  childStdio(): StdioOptions {
    return this.fd === null ? ['ignore', 'ignore', 'ignore'] : ['ignore', this.fd, this.fd];
  }

  /** runc has handed the file to the container; the shim keeps no copy of it. */
  closeChildEnds(): void {
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* already closed */ }
      this.fd = null;
    }
  }

  start(): void { /* the container writes to the file itself */ }
  closeStdin(): void { /* a log URI carries no stdin */ }
  async waitCopied(): Promise<void> { /* nothing is copied by the shim */ }

  close(): void {
    this.closeChildEnds();
  }
}
