// What the init process and exec'd processes share: identity, stdio, state, and the exit.
// The exit is recorded exactly once (from the reaper) and every waiter sees the same status.
import type { ProcessIO, StdioPaths } from '../io/process-io';
import { assertAllowed, type Operation, type ProcessStatus } from './process-state';
import type { Exit } from './reaper';

/** How long Delete waits for a process's output to drain (a daemonized child can hold it). */
export const IO_DRAIN_TIMEOUT_MS = 2000;
/**
 * How long an init's exit waits for its output to end before it is made known anyway (the
 * rest is bytes still in the pipe, read at once; a process left behind that holds the pipe
 * must not hold the exit).
 */
export const OUTPUT_EOF_TIMEOUT_MS = 50;

export abstract class ShimProcess {
  pid = 0;
  status: ProcessStatus = 'created';
  exitStatus = 0;
  exitedAt: Date | null = null;
  io: ProcessIO | null = null;
  private readonly exited: Promise<void>;
  private resolveExited!: () => void;
  /** The runc operations on this process, one after another (the Go shim's per-process mutex). */
  private operations: Promise<void> = Promise.resolve();

  constructor(
    /** The container id for the init, the exec id for an exec. */
    readonly id: string,
    readonly containerId: string,
    readonly stdio: StdioPaths,
  ) {
    this.exited = new Promise((resolve) => { this.resolveExited = resolve; });
  }

  get isInit(): boolean { return this.id === this.containerId; }

  /** Refuses `op` (FailedPrecondition, with the Go shim's words) if the state does not allow it. */
  check(op: Operation): void {
    assertAllowed(this.status, op);
  }

  /** Runs `op` once the operations begun before it have finished, as under the Go shim's p.mu. */
  protected serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.operations.then(op, op);
    this.operations = run.then(() => undefined, () => undefined);
    return run;
  }

  /**
   * Resolves once the operations begun so far have finished. The Go shim records an exit under
   * the same mutex, so a Kill still being answered is answered before Wait returns (and before
   * a Delete and Shutdown can end the shim under it).
   */
  operationsSettled(): Promise<void> {
    return this.operations;
  }

  /** Records the exit. Later calls are ignored: an exit status is final. */
  setExited(exit: Pick<Exit, 'status' | 'exitedAt'>): boolean {
    if (this.exitedAt) return false;
    this.exitStatus = exit.status;
    this.exitedAt = exit.exitedAt;
    if (this.status !== 'deleted') this.status = 'stopped';
    this.resolveExited();
    this.io?.processExited?.(IO_DRAIN_TIMEOUT_MS);
    return true;
  }

  /** Resolves once the process has exited (or was deleted without ever running). */
  wait(): Promise<void> {
    return this.exited;
  }

  /**
   * The process never ran (its start failed): release Wait callers now, as the Go shim closes
   * an exec's waitBlock when `runc exec` fails, instead of leaving them until Delete.
   */
  protected releaseWaitersWithoutExit(): void {
    this.resolveExited();
  }

  protected markDeletedWithoutExit(): void {
    if (!this.exitedAt) {
      this.exitedAt = new Date();
      this.resolveExited();
    }
    this.status = 'deleted';
  }
}
