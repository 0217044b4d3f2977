// A container's init process: created with `runc create`, started with `runc start`, reaped by
// our subreaper, deleted with `runc delete`. Mirrors pkg/process/init.go of the Go shim.
import * as path from 'node:path';
import { NotFoundError } from '../errors';
import { consoleOf } from '../io/console-io';
import type { ProcessIO, StdioPaths } from '../io/process-io';
import type { Runc } from '../runc/runc';
import { RuntimeError } from '../runc/runtime-error';
import { readPidFile } from './pid-file';
import { reaper, type Exit } from './reaper';
import { IO_DRAIN_TIMEOUT_MS, ShimProcess } from './shim-process';

export { IO_DRAIN_TIMEOUT_MS, OUTPUT_EOF_TIMEOUT_MS } from './shim-process';

export interface InitOptions {
  noPivotRoot?: boolean;
  noNewKeyring?: boolean;
}

export class InitProcess extends ShimProcess {
  private onReap: ((exit: Exit) => void) | null = null;
  /** An exit reaped before anyone listened (the init died during Create). */
  private unheardExit: Exit | null = null;

  constructor(
    id: string,
    readonly bundle: string,
    stdio: StdioPaths,
    private readonly runc: Runc,
    private readonly options: InitOptions,
  ) {
    super(id, id, stdio);
  }

  get pidFile(): string { return path.join(this.bundle, 'init.pid'); }

  /**
   * Called once with the init's exit as the reaper saw it. Reaping does not mark the process
   * exited: the listener does (setExited) when the exit may be known — after the container's
   * other processes were killed and its execs ended, as the Go shim's handleInitExit — so Wait
   * cannot return, nor Delete come, before. An exit reaped before a listener was set is handed
   * over when one is.
   */
  onReaped(listener: (exit: Exit) => void): void {
    this.onReap = listener;
    const exit = this.unheardExit;
    this.unheardExit = null;
    if (exit) listener(exit);
  }

  /** `runc create` with the given IO; afterwards the pid is known and its exit is claimed. */
  async create(io: ProcessIO | null, consoleSocket?: string): Promise<void> {
    this.io = io;
    const terminal = consoleOf(io);
    const since = new Date();
    try {
      await this.runc.create(this.id, this.bundle, {
        pidFile: this.pidFile,
        consoleSocket: consoleSocket ?? terminal?.socketPath,
        noPivot: this.options.noPivotRoot,
        noNewKeyring: this.options.noNewKeyring,
        stdio: io?.childStdio(),
      });
    } finally {
      io?.closeChildEnds();
    }
    await terminal?.receiveMaster();
    this.pid = await readPidFile(this.pidFile);
    this.claimExit(since);
  }

  /** Claims the exit of the current pid from the reaper (also used after a restore). */
  claimExit(since: Date): void {
    reaper.claim(this.pid, since, (exit) => {
      if (this.onReap) this.onReap(exit);
      else this.unheardExit = exit;
    });
  }

  start(): Promise<void> {
    return this.serialize(async () => {
      this.check('start');
      await this.runc.start(this.id);
      if (this.status === 'created') this.status = 'running';
    });
  }

  kill(signal: number, all: boolean): Promise<void> {
    return this.serialize(async () => {
      this.check('kill');
      try {
        await this.runc.kill(this.id, signal, all);
      } catch (err) {
        throw killError(err);
      }
    });
  }

  pause(): Promise<void> {
    return this.serialize(async () => {
      this.check('pause');
      this.status = 'pausing';
      try {
        await this.runc.pause(this.id);
        if (this.status === 'pausing') this.status = 'paused';
      } catch (err) {
        if (this.status === 'pausing') this.status = 'running';
        throw err;
      }
    });
  }

  resume(): Promise<void> {
    return this.serialize(async () => {
      this.check('resume');
      await this.runc.resume(this.id);
      if (this.status === 'paused') this.status = 'running';
    });
  }

  /**
   * `runc delete`. A created (never started) container is deleted with --force, which kills its
   * init; its exit is then recorded as 137 like the Go shim's.
   */
  async delete(): Promise<void> {
    this.check('delete');
    const wasCreated = this.status === 'created';
    if (this.io && !wasCreated) await this.io.waitCopied(IO_DRAIN_TIMEOUT_MS);
    try {
      await this.runc.delete(this.id, wasCreated);
    } catch (err) {
      // Already gone from runc's state is what we wanted.
      if (!(err instanceof RuntimeError && /does not exist|not exist/.test(err.message))) throw err;
    }
    this.io?.close();
    if (wasCreated && this.pid) {
      reaper.unclaim(this.pid);
      this.setExited({ status: 137, exitedAt: new Date() });
    }
    this.markDeletedWithoutExit();
  }
}

/** The Go shim's checkKillError: "process already finished" is NotFound, as containerd expects. */
export function killError(err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  if (/os: process already finished|container not running|no such process/i.test(msg)) {
    return new NotFoundError('process already finished: not found');
  }
  if (/does not exist/.test(msg)) return new NotFoundError('no such container: not found');
  return err instanceof Error ? err : new RuntimeError(msg);
}
