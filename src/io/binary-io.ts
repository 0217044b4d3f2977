// `binary:///path/to/logger?key=value` stdio (what `ctr run --log-uri binary://…` and
// Docker-style logging drivers send), as containerd-shim-runc-v2's NewBinaryIO does
// (pkg/process/io.go): the shim spawns the logger with the container's stdout and stderr pipes
// as its fds 3 and 4 and a readiness pipe as fd 5, and waits until the logger writes a byte to
// fd 5 or closes it before the container is created. The container writes straight into the
// pipes; the shim copies nothing. On delete the logger gets SIGTERM, and SIGKILL if it has not
// exited 12 s later (the Go shim's binaryIOProcTermTimeout).
import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../loader/on-first-use';
import * as fs from 'node:fs';
import { RuntimeError } from '../runc/runtime-error';
import { reaper } from '../process/reaper';
import { pipe2 } from '../sys/native';
import { pipeReader } from './fifo';
import type { ProcessIO } from './process-io';
import { closeChildFds, type ChildFds } from './child-fds';

/** How long the logger has to exit after SIGTERM before it is killed (as the Go shim). */
export const LOGGER_TERM_TIMEOUT_MS = 12_000;

export interface BinaryLogger {
  /** Absolute path of the logger binary (the URI's path). */
  path: string;
  args: string[];
}

/**
 * The logger command line, as the Go shim's NewBinaryCmd builds it: for every query key (here
 * in order of appearance; Go's map order is random), the key and then its first value.
 */
export function binaryLoggerFromUri(uri: URL): BinaryLogger {
  const args: string[] = [];
  const seen = new Set<string>();
  for (const [key, value] of uri.searchParams) {
    if (seen.has(key)) continue;
    seen.add(key);
    args.push(key, value);
  }
  return { path: decodeURIComponent(uri.pathname), args };
}

export class BinaryIO implements ProcessIO {
  /** Resolves when the logger signalled readiness (or closed fd 5); rejects if it failed to start. */
  readonly ready: Promise<void>;
  private childFds: ChildFds = ['ignore', 'ignore', 'ignore'];
  private readonly logger: ChildProcess;
  private readonly exited: Promise<void>;
  private terminating: Promise<void> | null = null;

  private constructor(logger: BinaryLogger, containerId: string, namespace: string, owner?: { uid: number; gid: number }) {
    const opened: number[] = [];
    const pipe = () => {
      const fds = pipe2({ cloexec: true });
      opened.push(...fds);
      return fds;
    };
    try {
      const [outR, outW] = pipe();
      const [errR, errW] = pipe();
      const [readyR, readyW] = pipe();
      if (owner) {
        fs.fchownSync(outW, owner.uid, owner.gid);
        fs.fchownSync(errW, owner.uid, owner.gid);
      }
      // The environment is exactly these two variables, as the Go shim sets cmd.Env.
      this.logger = childProcess().spawn(logger.path, logger.args, {
        stdio: ['ignore', 'ignore', 'ignore', outR, errR, readyW],
        env: { CONTAINER_ID: containerId, CONTAINER_NAMESPACE: namespace },
      });
      reaper.trackLibuvChild(this.logger);
      // The logger holds its own copies now (or failed to start): ours would only delay its EOFs.
      for (const fd of [outR, errR, readyW]) fs.closeSync(fd);
      this.childFds = ['ignore', outW, errW];
      opened.length = 0;
      const startError = new Promise<never>((_, reject) => {
        this.logger.once('error', (err) => reject(new RuntimeError(`failed to start binary process: ${err.message}`)));
      });
      startError.catch(() => undefined);
      this.exited = new Promise((resolve) => {
        this.logger.once('exit', () => resolve());
        this.logger.once('error', () => resolve());
      });
      const readiness = pipeReader(readyR);
      const signalled = new Promise<void>((resolve) => {
        const done = () => { readiness.destroy(); resolve(); };
        readiness.once('data', done);
        readiness.once('end', done);
        readiness.once('error', done);
        readiness.once('close', done);
      });
      this.ready = Promise.race([signalled, startError]);
    } catch (err) {
      for (const fd of opened) {
        try { fs.closeSync(fd); } catch { /* ignore */ }
      }
      throw err;
    }
  }

  /** Spawns the logger; await `ready` before handing childStdio() to the container. */
  static create(uri: URL, containerId: string, namespace: string, owner?: { uid: number; gid: number }): BinaryIO {
    return new BinaryIO(binaryLoggerFromUri(uri), containerId, namespace, owner);
  }

  /** The container gets /dev/null as stdin (the Go shim's binaryIO has none) and the pipes' write ends. */
  childStdio(): ChildFds {
    return this.childFds;
  }

  /**
   * The container holds its own copies of the write ends after runc has run. Closing ours means
   * the logger sees EOF when the container's last writer exits (the Go shim keeps them until
   * delete; the logger gets SIGTERM then either way).
   */
  closeChildEnds(): void {
    closeChildFds(this.childFds);
  }

  start(): void { /* the container writes to the logger directly */ }
  closeStdin(): void { /* no stdin */ }
  async waitCopied(): Promise<void> { /* nothing is copied by the shim */ }

  close(): void {
    this.closeChildEnds();
    void this.terminate();
  }

  /**
   * SIGTERM, so the logger can flush; SIGKILL after LOGGER_TERM_TIMEOUT_MS. Resolves when it
   * has exited. Delete awaits this, as the Go shim's Close waits for the logger.
   */
  terminate(): Promise<void> {
    if (this.terminating) return this.terminating;
    this.closeChildEnds();
    const logger = this.logger;
    this.terminating = (async () => {
      if (logger.exitCode !== null || logger.signalCode !== null || logger.pid === undefined) return;
      try {
        logger.kill('SIGTERM');
      } catch {
        logger.kill('SIGKILL');
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), LOGGER_TERM_TIMEOUT_MS); });
      const stillRunning = await Promise.race([this.exited.then(() => false), timedOut]);
      if (timer) clearTimeout(timer);
      if (stillRunning) {
        logger.kill('SIGKILL');
        await this.exited;
      }
    })();
    return this.terminating;
  }
}
