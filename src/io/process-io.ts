import type { ChildFds } from './child-fds';

/** containerd's stdio for one process: FIFO paths (or log URIs), and whether it has a tty. */
export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** What a process needs from its IO, whatever carries it (pipes, a pty, a log binary). */
export interface ProcessIO {
  /** stdio to hand to runc for the container. */
  childStdio(): ChildFds;
  /** Called once runc has passed the child ends on. */
  closeChildEnds(): void;
  /** Starts copying between the container and containerd. */
  start(): void;
  closeStdin(): void;
  /** Waits for the output to be fully copied (bounded: a daemonized child can hold a pipe). */
  waitCopied(timeoutMs: number): Promise<void>;
  close(): void;
  /** Resolves when the IO can take the container's output (a logger binary has signalled). */
  readonly ready?: Promise<void>;
  /** Ends whatever the IO runs itself (a logger binary) and resolves when it has gone. */
  terminate?(): Promise<void>;
  /**
   * The process's exit was recorded: what only the running process needs (a terminal's pty
   * master) may be released once its output is drained, waiting at most `drainTimeoutMs`.
   */
  processExited?(drainTimeoutMs: number): void;
  /**
   * Resolves once the process's output has reached containerd's client (bounded: waits for the
   * output to end at most `eofTimeoutMs`). Only where the shim copies into the client's FIFOs.
   */
  outputDelivered?(eofTimeoutMs: number): Promise<void>;
}

/**
 * outputDelivered's rule, for IOs that copy into the client's FIFOs: once the output has
 * `ended` within `eofTimeoutMs`, wait until it is `copied` (the FIFOs closed after their reader
 * took what they held); if it has not ended by then, do not wait at all.
 */
export async function deliveredUnlessHeld(ended: Promise<unknown>, copied: Promise<unknown>, eofTimeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const endedInTime = await Promise.race([
    ended.then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), eofTimeoutMs); }),
  ]);
  if (timer) clearTimeout(timer);
  if (endedInTime) await copied;
}
