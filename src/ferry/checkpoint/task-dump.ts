// The CRIU dump of a running task, through containerd's Tasks API so that it works whatever the
// container's runtime (ferry's shim, containerd-shim-runc-v2): as containerd's own client does
// (client/task.go Checkpoint), the task is paused first so that its memory and its writable layer
// are taken at the same instant, and CRIU dumps with "leave running" (exit=false).
//
// Where the images go: CheckpointOptions.image_path = a directory of ours. containerd then skips
// its content store (2.1 for every runtime; 1.7 for runc's runtime names, while for other names it
// passes the options through and ferry's shim honours image_path itself — 1.7 then tars an empty
// directory into the content store, under the caller's lease). work_path = another directory of
// ours, where CRIU leaves dump.log and stats-dump.
//
// Afterwards the task is either resumed (--leave-running) or stopped: killed while still frozen,
// then thawed, so it runs no instruction after the dump; only then is its task deleted. The
// container record is never removed.
import { checkpointOptionsAny, callTasks, TaskStatus } from '../containerd/tasks';
import type { Connection } from '../containerd/connection';
import { promises as fsp } from 'node:fs';
import { FailedPreconditionError, NotFoundError } from '../../errors';
import { criuFailureLine, criuMessage } from '../../format/criu/dump-log';

export interface DumpOptions {
  imagesDir: string;
  workDir: string;
  tcpEstablished: boolean;
  fileLocks: boolean;
}

/** A CRIU dump can take as long as writing the container's memory out: minutes for big ones. */
const DUMP_TIMEOUT_MS = 60 * 60 * 1000;
const STOP_TIMEOUT_MS = 60 * 1000;
const SIGKILL = 9;

const STATUS_WORDS: Record<number, string> = {
  [TaskStatus.CREATED]: 'created but not started',
  [TaskStatus.STOPPED]: 'stopped',
  [TaskStatus.PAUSING]: 'being paused',
  [TaskStatus.UNKNOWN]: 'in an unknown state',
};

export class TaskDump {
  private constructor(
    private readonly conn: Connection,
    readonly containerId: string,
    readonly pid: number,
    /** True when we paused the task (and so must resume it); false when it was paused already. */
    private readonly pausedByUs: boolean,
    readonly process: Awaited<ReturnType<typeof callTasks<'get'>>>['process'],
  ) {}

  /** Checks the task is running (or paused) and pauses it. */
  static async pause(conn: Connection, containerId: string): Promise<TaskDump> {
    let process;
    try {
      process = (await callTasks(conn, 'get', { containerId })).process;
    } catch (err) {
      if ((err as { code?: number }).code === 5) throw new FailedPreconditionError(`container ${JSON.stringify(containerId)} is not running (it has no task)`);
      throw err;
    }
    if (!process) throw new NotFoundError(`container ${JSON.stringify(containerId)} has no task`);
    if (process.status !== TaskStatus.RUNNING && process.status !== TaskStatus.PAUSED) {
      throw new FailedPreconditionError(`container ${JSON.stringify(containerId)} is not running (its task is ${STATUS_WORDS[process.status] ?? `in state ${process.status}`})`);
    }
    const pausedByUs = process.status === TaskStatus.RUNNING;
    if (pausedByUs) await callTasks(conn, 'pause', { containerId });
    return new TaskDump(conn, containerId, process.pid, pausedByUs, process);
  }

  /** CRIU dumps the (paused) task into opts.imagesDir; the task stays (frozen). */
  async dump(o: DumpOptions): Promise<void> {
    const options = checkpointOptionsAny({
      exit: false, openTcp: o.tcpEstablished, fileLocks: o.fileLocks, imagePath: o.imagesDir, workPath: o.workDir,
    });
    await callTasks(this.conn, 'checkpoint', { containerId: this.containerId, options }, { timeoutMs: DUMP_TIMEOUT_MS });
  }

  /** The task runs on (when we paused it). */
  async resume(): Promise<void> {
    if (this.pausedByUs) await callTasks(this.conn, 'resume', { containerId: this.containerId });
  }

  /**
   * Stops the task as Podman's checkpoint does, but only now that the checkpoint is complete:
   * SIGKILL to every process while they are frozen, thaw, wait for the exit, delete the task.
   */
  async stop(): Promise<number> {
    const waited = callTasks(this.conn, 'wait', { containerId: this.containerId, execId: '' }, { timeoutMs: STOP_TIMEOUT_MS });
    waited.catch(() => undefined);
    await callTasks(this.conn, 'kill', { containerId: this.containerId, execId: '', signal: SIGKILL, all: true });
    // A frozen process does not die before it is thawed; the pending SIGKILL is handled first.
    await callTasks(this.conn, 'resume', { containerId: this.containerId }).catch(() => undefined);
    const exit = await waited;
    await callTasks(this.conn, 'delete', { containerId: this.containerId });
    return exit.exitStatus;
  }
}

/** Why a dump failed, from CRIU's dump.log (src/format/criu/dump-log.ts), without CRIU's line prefix. */
export async function dumpFailureCause(dumpLog: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(dumpLog, 'utf8');
  } catch {
    return undefined;
  }
  const line = criuFailureLine(text);
  return line === undefined ? undefined : criuMessage(line);
}
