// The init process of a container created from a checkpoint. Like the Go shim's
// createdCheckpointState: Create records the restore (no runc call, pid 0), Start runs
// `runc restore --detach --no-subreaper` with the container's IO (pipes, or a pty through the
// console socket), starts copying it, and claims the restored pid from our reaper. The staging directory is removed after the restore, success or failure.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { consoleOf } from '../io/console-io';
import type { ProcessIO, StdioPaths } from '../io/process-io';
import { InitProcess, type InitOptions } from '../process/init-process';
import { readPidFile } from '../process/pid-file';
import type { Runc } from '../runc/runc';
import { removeStagingDir } from '../format/archive-staging';
import type { RestorePlan } from './restore';
import { criuFailureLine } from './criu-log';
import { RuntimeError } from '../runc/runtime-error';
import { restoreTimeoutMs, unmountRestoreLeftovers } from './restore-limits';

export class RestoredInitProcess extends InitProcess {
  constructor(
    id: string,
    bundle: string,
    stdio: StdioPaths,
    private readonly restoreRunc: Runc,
    private readonly restoreOptions: InitOptions,
    readonly plan: RestorePlan,
  ) {
    super(id, bundle, stdio, restoreRunc, restoreOptions);
  }

  /** Records the restore; nothing runs until Start. */
  override async create(io: ProcessIO | null): Promise<void> {
    this.io = io;
  }

  override async start(): Promise<void> {
    this.check('start');
    const since = new Date();
    // A terminal container: runc restore sends the (new) pty master over the console socket.
    const terminal = consoleOf(this.io);
    try {
      await fsp.mkdir(this.plan.workPath, { recursive: true, mode: 0o700 });
      await fsp.rm(this.pidFile, { force: true });
      const restoreLog = path.join(this.plan.workPath, 'restore.log');
      // A log left by an earlier restore must not be quoted for this one.
      await fsp.rm(restoreLog, { force: true });
      try {
        await this.restoreRunc.restore(this.id, this.bundle, {
          imagePath: this.plan.imagePath,
          workPath: this.plan.workPath,
          pidFile: this.pidFile,
          consoleSocket: terminal?.socketPath,
          noPivot: this.restoreOptions.noPivotRoot,
          stdio: this.io?.childStdio(),
          timeoutMs: restoreTimeoutMs(),
        });
      } catch (err) {
        // A runc killed in the middle leaves its state dir and the rootfs mounted at criu-root.
        await this.cleanUpFailedRestore();
        // runc says only "criu failed"; the cause is in CRIU's log.
        const runcLine = (err instanceof Error ? err.message : String(err)).split('\n')[0];
        const criuLine = await criuFailureLine(restoreLog);
        throw new RuntimeError(`${runcLine}; CRIU log ${restoreLog}${criuLine ? `: ${criuLine}` : ' (missing)'}`);
      } finally {
        this.io?.closeChildEnds();
      }
      await terminal?.receiveMaster();
      this.io?.start();
      this.pid = await readPidFile(this.pidFile);
      this.claimExit(since);
      if (this.status === 'created') this.status = 'running';
    } finally {
      if (this.plan.staged) await removeStagingDir(this.bundle);
    }
  }

  /**
   * After a failed or cut-off `runc restore`: unmount what runc (criu-root in its state dir) and
   * CRIU (its cgroup yard in the work dir) left mounted, and drop runc's state of the half-made
   * container, so that nothing of it stays behind (restore-limits.ts).
   */
  private async cleanUpFailedRestore(): Promise<void> {
    unmountRestoreLeftovers([path.join(this.restoreRunc.config.root, this.id), this.plan.workPath]);
    try {
      await this.restoreRunc.delete(this.id, true);
    } catch {
      /* runc never got as far as recording the container */
    }
  }

  override async delete(): Promise<void> {
    try {
      await super.delete();
    } finally {
      if (this.plan.staged) await removeStagingDir(this.bundle);
    }
  }
}
