// A process exec'd into a running container: `runc exec --detach --process <spec>`; it is
// re-parented to our subreaper exactly like the init, and reaped the same way.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { consoleOf } from '../io/console-io';
import type { ProcessIO, StdioPaths } from '../io/process-io';
import type { Runc } from '../runc/runc';
import { killError } from './init-process';
import { readPidFile } from './pid-file';
import { reaper, type Exit } from './reaper';
import { ShimProcess } from './shim-process';

export class ExecProcess extends ShimProcess {
  private onExit: ((exit: Exit) => void) | null = null;
  /** The OCI process spec (JSON) from ExecProcessRequest.spec. */
  constructor(
    execId: string,
    containerId: string,
    /** The container's bundle: runc writes the exec's pid file there, as for the Go shim. */
    private readonly bundle: string,
    stdio: StdioPaths,
    private readonly spec: Uint8Array,
    private readonly runc: Runc,
    private readonly makeIO: () => ProcessIO | null,
  ) {
    super(execId, containerId, stdio);
  }

  onExited(listener: (exit: Exit) => void): void { this.onExit = listener; }

  /** `<bundle>/<exec id>.pid`, the Go shim's name (newExecPidFile). */
  get pidFile(): string { return path.join(this.bundle, `${this.id}.pid`); }

  async start(): Promise<void> {
    this.check('start');
    // The spec goes to a fresh file of its own in the temp dir (as go-runc's os.CreateTemp),
    // created exclusively (never through a planted file or symlink) and removed once runc has
    // read it; written, read (the pid file) and removed synchronously, microseconds each: through
    // fs.promises these were ~10 threadpool round trips in series between Start and its answer.
    const specPath = createSpecFile(this.spec);
    let specLeft = true;
    const removeSpec = () => { if (specLeft) { specLeft = false; removeFile(specPath); } };
    const pidFile = this.pidFile;
    try {
      this.io = this.makeIO();
      await this.io?.ready; // a logger binary must be ready before the process writes
      const terminal = consoleOf(this.io);
      const since = new Date();
      try {
        await this.runc.exec(this.containerId, {
          processSpecPath: specPath,
          pidFile,
          consoleSocket: terminal?.socketPath,
          stdio: this.io?.childStdio(),
        });
      } finally {
        this.io?.closeChildEnds();
        removeSpec(); // runc has read it
      }
      // runc has sent the pty master by now; it waits in the socket's backlog.
      await terminal?.receiveMaster();
      this.io?.start();
      this.pid = await readPidFile(pidFile);
      this.status = 'running';
      reaper.claim(this.pid, since, (exit) => {
        if (this.setExited(exit)) this.onExit?.(exit);
      });
    } catch (err) {
      this.io?.close();
      if (!this.pid) this.releaseWaitersWithoutExit();
      throw err;
    } finally {
      removeSpec(); // when something failed before runc ran
    }
  }

  /** Its start was refused before runc ran (the init had exited): release Wait as a failed start does. */
  startRefused(): void {
    if (!this.pid) this.releaseWaitersWithoutExit();
  }

  async kill(signal: number): Promise<void> {
    this.check('kill');
    if (this.status === 'stopped' || !this.pid) throw killError(new Error('os: process already finished'));
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      throw killError(err);
    }
  }

  async delete(drainMs: number): Promise<void> {
    this.check('delete');
    if (this.io && this.status === 'stopped') await this.io.waitCopied(drainMs);
    this.io?.close();
    removeFile(this.pidFile);
    this.markDeletedWithoutExit();
  }
}

let specFiles = 0;

/**
 * Writes `spec` to a new file `<tmpdir>/ferry-process-<pid>-<n>-<random>` (mode 0600) and
 * returns its path. O_EXCL is what makes it safe; the name need only be new (as go-runc's
 * CreateTemp, not cryptographic: node:crypto would cost every daemon its load at start-up).
 */
function createSpecFile(spec: Uint8Array): string {
  for (;;) {
    const file = path.join(os.tmpdir(), `ferry-process-${process.pid}-${++specFiles}-${Math.random().toString(36).slice(2, 10)}`);
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // someone made that name: draw again
      throw err;
    }
    try {
      fs.writeSync(fd, spec);
    } catch (err) {
      fs.closeSync(fd);
      removeFile(file);
      throw err;
    }
    fs.closeSync(fd);
    return file;
  }
}

/** unlink, where a file already gone is fine. */
function removeFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The OCI process spec runc gets for an exec: the request's, with `terminal` set from the
 * request's IO, as the Go shim does (`spec.Terminal = r.Terminal`): a client may ask for a
 * terminal only in the IO, and runc refuses a console socket for a spec without one.
 */
export function execProcessSpec(spec: Uint8Array, terminal: boolean): Uint8Array {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(spec).toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`exec process spec is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('exec process spec is not a JSON object');
  }
  return Buffer.from(JSON.stringify({ ...parsed, terminal }));
}
