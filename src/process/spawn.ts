// Runs a child process without fork(): posix_spawnp in the native layer (glibc clones with
// CLONE_VM|CLONE_VFORK, as Go's os/exec does), where child_process forks the whole ~50 MB daemon
// and copies its page tables (1.8-6.6 ms of the daemon's CPU per runc call, rising with load;
// docs/benchmarks.md "Round 4: runc without fork"). The child is not libuv's: the addon watches
// its pidfd in libuv's epoll and reaps it by pid, and the daemon's reaper leaves that pid alone
// meanwhile (Reaper.leaveToOwner), as it leaves child_process's. (A claim on the reaper would
// need a SIGCHLD listener in every process that runs runc, and a jest test's `process` cannot
// listen for signals.) Output comes through real pipes read by epoll (net.Socket), never by fs
// streams (NOTES.md §3).
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as os from 'node:os';
import { closeAfterFlush, pipeReader, pipeWriter } from '../io/fifo';
import { childProcess } from '../loader/on-first-use';
import { pidfdSupported, pipe2, spawnProcess } from '../sys/native';
import { reaper } from './reaper';

/** What the child gets as one of fds 0, 1, 2: an fd of ours (dup'd), /dev/null, or a new pipe. */
export type SpawnStdio = number | 'ignore' | 'pipe';

export interface SpawnOptions {
  stdio: readonly [SpawnStdio, SpawnStdio, SpawnStdio];
  /** Working directory of the child; it must exist (a missing one fails as ENOENT). */
  cwd: string;
  /** The child's whole environment, "KEY=value". */
  env: readonly string[];
  /** The process umask for the spawn only (the child keeps it), e.g. 0o077. */
  umask?: number;
  /** Fork through child_process even where posix_spawn can be used (tests of the fallback). */
  fork?: boolean;
}

export interface ChildExit {
  /** Exit code, or null when a signal ended the child. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedChild {
  readonly pid: number;
  /** The write end of a 'pipe' stdin; closed after the flush by end(). */
  readonly stdin: net.Socket | null;
  readonly stdout: net.Socket | null;
  readonly stderr: net.Socket | null;
  /** Settles once the child has exited and its 'pipe' stdout and stderr reached EOF (child_process's 'close'). */
  readonly closed: Promise<ChildExit>;
}

let canSpawnNatively: boolean | undefined;

/**
 * Starts `file` with `args`. Throws synchronously when the spawn fails (the errno error of
 * posix_spawnp: code 'ENOENT' for a binary not found in PATH, or a cwd that does not exist);
 * nothing is left open then. On a kernel without pidfd_open (before Linux 5.3: RHEL 8's 4.18)
 * the child is forked by child_process instead, and a failed spawn rejects `closed`.
 */
export function spawnChild(file: string, args: readonly string[], opts: SpawnOptions): SpawnedChild {
  if (opts.fork || !(canSpawnNatively ??= pidfdSupported())) return forkChild(file, args, opts);
  const childEnds: (number | null)[] = [];
  const parentEnds: number[] = [];
  const toClose: number[] = [];
  try {
    opts.stdio.forEach((s, n) => {
      if (s === 'ignore') childEnds.push(null);
      else if (typeof s === 'number') childEnds.push(s);
      else {
        // Both ends close-on-exec: a concurrent spawn must not inherit them, or EOF never comes.
        const [r, w] = pipe2({ cloexec: true });
        const [mine, theirs] = n === 0 ? [w, r] : [r, w];
        parentEnds[n] = mine;
        toClose.push(theirs);
        childEnds.push(theirs);
      }
    });
    let exitStatus: (status: { exitStatus: number; signaled: boolean }) => void = () => undefined;
    const exited = new Promise<{ exitStatus: number; signaled: boolean }>((resolve) => { exitStatus = resolve; });
    let release = (): void => undefined;
    const previousUmask = opts.umask === undefined ? undefined : process.umask(opts.umask);
    let pid: number;
    try {
      pid = spawnProcess(file, [file, ...args], opts.env, opts.cwd, childEnds as [number | null, number | null, number | null], (status, signaled) => {
        release();
        exitStatus({ exitStatus: status, signaled });
      });
    } finally {
      if (previousUmask !== undefined) process.umask(previousUmask);
    }
    release = reaper.leaveToOwner(pid);
    for (const fd of toClose) fs.closeSync(fd);
    toClose.length = 0;
    const stdin = parentEnds[0] === undefined ? null : pipeWriter(parentEnds[0]);
    const stdout = parentEnds[1] === undefined ? null : pipeReader(parentEnds[1]);
    const stderr = parentEnds[2] === undefined ? null : pipeReader(parentEnds[2]);
    // A write to a child that is gone fails with EPIPE: the child's exit says what happened.
    stdin?.on('error', () => undefined);
    const ends = [stdout, stderr].filter((s): s is net.Socket => s !== null).map(endOf);
    const closed = Promise.all([exited, ...ends]).then(([exit]) => toChildExit(exit));
    return { pid, stdin, stdout, stderr, closed };
  } catch (err) {
    for (const fd of [...toClose, ...parentEnds.filter((fd) => fd !== undefined)]) {
      try { fs.closeSync(fd); } catch { /* closed already */ }
    }
    throw err;
  }
}

/** Writes `input` to the child's stdin pipe and closes it once written. */
export function endInput(stdin: net.Socket, input: string): void {
  stdin.write(input);
  closeAfterFlush(stdin);
}

/** Resolves when a read end has reached EOF or failed (its fd is closed then). */
function endOf(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    s.once('close', () => resolve());
    s.on('error', () => undefined);
  });
}

function toChildExit(exit: { exitStatus: number; signaled: boolean }): ChildExit {
  if (!exit.signaled) return { code: exit.exitStatus, signal: null };
  const number = exit.exitStatus - 128;
  const name = (Object.keys(os.constants.signals) as NodeJS.Signals[]).find((k) => os.constants.signals[k] === number);
  return { code: null, signal: name ?? null };
}

/** The fallback: child_process (fork + exec), its exit reaped by libuv. */
function forkChild(file: string, args: readonly string[], opts: SpawnOptions): SpawnedChild {
  const env: NodeJS.ProcessEnv = {};
  for (const kv of opts.env) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const previousUmask = opts.umask === undefined ? undefined : process.umask(opts.umask);
  let child;
  try {
    child = childProcess().spawn(file, args, { stdio: [...opts.stdio], cwd: opts.cwd || undefined, env });
  } finally {
    if (previousUmask !== undefined) process.umask(previousUmask);
  }
  reaper.trackLibuvChild(child);
  child.stdin?.on('error', () => undefined);
  const closed = new Promise<ChildExit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { pid: child.pid ?? -1, stdin: child.stdin as net.Socket | null, stdout: child.stdout as net.Socket | null, stderr: child.stderr as net.Socket | null, closed };
}
