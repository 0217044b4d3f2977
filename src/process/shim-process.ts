// What the init process and exec'd processes share: identity, stdio, state, and the exit.
// The exit is recorded exactly once (from the reaper) and every waiter sees the same status.
import type { ProcessIO, StdioPaths } from '../io/process-io';
import { assertAllowed, type Operation, type ProcessStatus } from './process-state';
import type { Exit } from './reaper';

/** How long Delete waits for a process's output to drain (a daemonized child can hold it). */
export const IO_DRAIN_TIMEOUT_MS = 2000;

export abstract class ShimProcess {
  pid = 0;
  status: ProcessStatus = 'created';
  exitStatus = 0;
  exitedAt: Date | null = null;
  io: ProcessIO | null = null;
  private readonly exited: Promise<void>;
  private resolveExited!: () => void;

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
