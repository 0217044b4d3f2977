// One container as the shim holds it: its bundle, runc handle, rootfs mount, init process and
// exec'd processes.
import { NotFoundError } from '../errors';
import type { ExecProcess } from '../process/exec-process';
import type { InitProcess } from '../process/init-process';
import type { Exit } from '../process/reaper';
import type { ShimProcess } from '../process/shim-process';
import type { Runc } from '../runc/runc';
import type { RuntimeOptions } from './runtime-options';

export class Container {
  readonly execs = new Map<string, ExecProcess>();
  /**
   * The init's exit as reaped, before it is recorded and published (the Go shim's
   * containerInitExit): from then on no exec may start.
   */
  initExit: Exit | null = null;
  /** Execs starting or running, whose exit (or failed start) is still to come (Go: runningExecs). */
  private liveExecs = 0;
  private readonly execsEndedWaiters: (() => void)[] = [];
  /** Exec starts in flight (settled when their `runc exec` has returned and the pid is claimed). */
  readonly execStarts = new Set<Promise<unknown>>();
  /** Settles when the checkpoint running now (if any) has ended. */
  private checkpointing: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly namespace: string,
    readonly runc: Runc,
    readonly options: RuntimeOptions,
    readonly init: InitProcess,
    /** Whether the OCI spec has its own pid namespace (if not, init's exit kills the rest). */
    readonly ownPidNamespace: boolean,
    readonly rootfsMounted: boolean,
  ) {}

  process(execId: string): ShimProcess {
    if (!execId) return this.init;
    const p = this.execs.get(execId);
    if (!p) throw new NotFoundError(`process ${execId} does not exist: not found`);
    return p;
  }

  exec(execId: string): ExecProcess {
    const p = this.execs.get(execId);
    if (!p) throw new NotFoundError(`process ${execId} does not exist: not found`);
    return p;
  }

  /** An exec's start begins: the init's exit waits for it to fail or for the exec to exit. */
  execStarting(): void {
    this.liveExecs++;
  }

  /** An exec's start failed, or its exit was published. */
  execEnded(): void {
    if (this.liveExecs > 0) this.liveExecs--;
    if (this.liveExecs === 0) for (const w of this.execsEndedWaiters.splice(0)) w();
  }

  /** Resolves when no exec is starting or running. */
  execsEnded(): Promise<void> {
    if (this.liveExecs === 0) return Promise.resolve();
    return new Promise((resolve) => this.execsEndedWaiters.push(resolve));
  }

  /**
   * Runs `dump` as this container's checkpoint, after any earlier one. While CRIU holds the
   * container frozen, runc refuses an exec ("cannot exec in a paused container"), and a pause
   * or resume would fight CRIU over the freezer: those wait for afterCheckpoint() instead.
   */
  async checkpoint<T>(dump: () => Promise<T>): Promise<T> {
    const earlier = this.checkpointing;
    let done!: () => void;
    this.checkpointing = new Promise((resolve) => { done = resolve; });
    try {
      await earlier;
      return await dump();
    } finally {
      done();
    }
  }

  /** Resolves once no checkpoint of this container is running. */
  async afterCheckpoint(): Promise<void> {
    for (let current = this.checkpointing; ; current = this.checkpointing) {
      await current;
      if (current === this.checkpointing) return;
    }
  }
}
