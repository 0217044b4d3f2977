// `file:///path/to/log` stdio (`ctr run --log-uri file://…`), as containerd-shim-runc-v2 does it
// (pkg/process/io.go, createIO and copyPipes): the parent directories are created (0755), the
// file is created if missing (0644), the container gets a pipe as its stdout and another as its
// stderr, and the shim copies both into the file, opened once with O_APPEND.
//
// Why pipes and not the file itself as the container's fds 1 and 2: CRIU can dump a process
// only if every file it holds lies on one of the container's mounts ("Can't lookup mount=… for
// fd=1 path=/x.log" otherwise), and a host log file does not. Pipes whose other end is outside
// the container are external pipes: runc records them in descriptors.json at the dump and maps
// them onto the new task's stdio (--inherit-fd) at the restore, so a file-logging container can
// be checkpointed and restored, and a restored one goes on appending to its file.
//
// What copying costs (as with the Go shim): the two streams are written by two copies, so a
// single write of one stream larger than a pipe read can be interleaved with the other stream.
// Each stream keeps its own order; small writes (≤ PIPE_BUF) arrive whole.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { PipeIO } from './pipe-io';
import type { ProcessIO } from './process-io';
import type { ChildFds } from './child-fds';

export class FileIO implements ProcessIO {
  /** The log file, until the copies' stream has taken it over (it closes it then). */
  private fd: number | null;
  private readonly pipes: PipeIO;

  private constructor(readonly filePath: string, fd: number, owner?: { uid: number; gid: number }) {
    this.fd = fd;
    // stdout and stderr name the same path: PipeIO opens it once and closes it after both.
    this.pipes = PipeIO.create({ stdin: '', stdout: filePath, stderr: filePath, terminal: false }, owner, () => this.takeFile());
  }

  static create(uri: URL, owner?: { uid: number; gid: number }): FileIO {
    const filePath = decodeURIComponent(uri.pathname);
    fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o755 });
    const existed = fs.existsSync(filePath);
    const fd = fs.openSync(filePath, fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o644);
    try {
      if (owner && !existed) fs.fchownSync(fd, owner.uid, owner.gid);
      return new FileIO(filePath, fd, owner);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** The file as a stream the copies write into; the stream owns (and closes) the fd. */
  private takeFile(): Writable {
    const fd = this.fd;
    if (fd === null) throw new Error(`log file ${this.filePath} was already closed`);
    this.fd = null;
    return fs.createWriteStream(this.filePath, { fd, autoClose: true });
  }

  /** No stdin (a log URI carries none); the pipes' write ends as stdout and stderr. */
  childStdio(): ChildFds {
    return this.pipes.childStdio();
  }

  closeChildEnds(): void {
    this.pipes.closeChildEnds();
  }

  /** Starts copying both pipes into the file (after runc create, or after runc restore). */
  start(): void {
    this.pipes.start();
  }

  closeStdin(): void { /* a log URI carries no stdin */ }

  /** Resolves when both pipes have reached EOF and all they carried is in the file (or after `timeoutMs`). */
  waitCopied(timeoutMs: number): Promise<void> {
    return this.pipes.waitCopied(timeoutMs);
  }

  close(): void {
    this.pipes.close();
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* already closed */ }
      this.fd = null;
    }
  }
}
