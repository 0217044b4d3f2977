// The shim is a child subreaper: container inits (and exec'd processes) are re-parented to it
// when `runc create`/`runc exec --detach` exit. Node's libuv reaps only the children IT spawned,
// with waitpid(thatPid), and silently loses their 'exit' event when someone else reaps them
// first — so this reaper must never call waitpid(-1). On every SIGCHLD (signals coalesce, so
// one SIGCHLD can stand for many exits) it lists our children (the main thread's: see
// listOwnChildren), skips the pids spawned through child_process (libuv's) or spawnChild
// (reaped through their pidfd, src/process/spawn.ts), and waitpid(pid, WNOHANG)s the rest.
//
// A container can exit before the shim has even read its pid file: exits of pids nobody has
// claimed yet are kept (with the time they were seen) and handed over when the pid is claimed.
import type { ChildProcess } from 'node:child_process';
import { listOwnChildren } from '../sys/children';
import { waitpidNoHang } from '../sys/native';

export interface Exit {
  pid: number;
  /** Exit code, or 128+signal when killed by a signal (containerd's convention). */
  status: number;
  exitedAt: Date;
}

type ExitListener = (exit: Exit) => void;

/** How long an unclaimed exit is kept. A claim always follows its exit within seconds. */
const UNCLAIMED_TTL_MS = 5 * 60_000;
const MAX_UNCLAIMED = 4096;

export class Reaper {
  /** Children someone else reaps by pid: libuv (child_process) or spawnChild's pidfd watch. */
  private readonly reapedElsewhere = new Set<number>();
  private readonly claims = new Map<number, ExitListener>();
  private readonly unclaimed = new Map<number, Exit>();
  private started = false;

  /** Starts listening for SIGCHLD. A SIGCHLD listener does not keep the event loop alive. */
  start(): void {
    if (this.started) return;
    this.started = true;
    process.on('SIGCHLD', this.reap);
    // Exits that happened before we listened.
    this.reap();
  }

  stop(): void {
    process.off('SIGCHLD', this.reap);
    this.started = false;
  }

  /** Records a child spawned through child_process so the reaper leaves it to libuv. */
  trackLibuvChild(child: ChildProcess): void {
    const pid = child.pid;
    if (pid === undefined) return;
    this.reapedElsewhere.add(pid);
    child.once('exit', () => this.reapedElsewhere.delete(pid));
  }

  /**
   * Leaves `pid` to whoever started it and reaps it (spawnChild's pidfd watch, src/process/spawn.ts)
   * until the returned function is called, right after that owner has reaped it. Call it in the
   * tick the child was spawned in: no SIGCHLD scan runs in between.
   */
  leaveToOwner(pid: number): () => void {
    this.reapedElsewhere.add(pid);
    return () => { this.reapedElsewhere.delete(pid); };
  }

  /**
   * Claims the exit of `pid`. If it already exited after `notBefore`, the listener is called
   * on the next tick; otherwise when it exits. `notBefore` guards against a stale exit of a
   * recycled pid being matched to a new process.
   */
  claim(pid: number, notBefore: Date, listener: ExitListener): void {
    const early = this.unclaimed.get(pid);
    if (early) {
      this.unclaimed.delete(pid);
      if (early.exitedAt.getTime() >= notBefore.getTime() - 1) {
        process.nextTick(listener, early);
        return;
      }
    }
    this.claims.set(pid, listener);
    // The process may have exited between its creation and this claim without its SIGCHLD
    // being processed yet: look at this pid once more (any other exit has its own SIGCHLD
    // still to come, or was taken by a scan since).
    this.reapOne(pid);
  }

  /** Whether someone waits for the exit of `pid` (a container's init or exec that runs). */
  isClaimed(pid: number): boolean {
    return this.claims.has(pid);
  }

  /** Stops waiting for `pid` (its process was deleted before exiting, e.g. a failed start). */
  unclaim(pid: number): void {
    this.claims.delete(pid);
  }

  private readonly reap = (): void => {
    let pids: number[];
    try {
      pids = listOwnChildren();
    } catch {
      return;
    }
    for (const pid of pids) this.reapOne(pid);
  };

  /** waitpid(pid, WNOHANG) unless libuv (or another owner) reaps `pid`; delivers its exit if it has exited. */
  private reapOne(pid: number): void {
    if (this.reapedElsewhere.has(pid)) return;
    let result;
    try {
      result = waitpidNoHang(pid);
    } catch {
      return; // ECHILD: not our child (yet), raced with libuv, or already gone.
    }
    if (!result) return;
    this.deliver({ pid, status: result.exitStatus, exitedAt: new Date() });
  }

  private deliver(exit: Exit): void {
    const listener = this.claims.get(exit.pid);
    if (listener) {
      this.claims.delete(exit.pid);
      listener(exit);
    } else {
      this.keepUnclaimed(exit);
    }
  }

  private keepUnclaimed(exit: Exit): void {
    const cutoff = Date.now() - UNCLAIMED_TTL_MS;
    for (const [pid, e] of this.unclaimed) {
      if (e.exitedAt.getTime() < cutoff || this.unclaimed.size >= MAX_UNCLAIMED) this.unclaimed.delete(pid);
      else break;
    }
    this.unclaimed.set(exit.pid, exit);
  }
}

/** The daemon's one reaper. */
export const reaper = new Reaper();
