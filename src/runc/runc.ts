// A thin, typed wrapper around the runc command line: one method per runc command ferry uses.
// Every runc child is started without fork (posix_spawnp, src/process/spawn.ts) and reaped
// through its pidfd there; the daemon's reaper leaves it alone (src/process/reaper.ts). runc is always run with `--log <bundle>/log.json --log-format json`
// so that a failure can be reported with runc's own message, as containerd-shim-runc-v2 does.
// Arguments come in go-runc's order and forms, and every command runs with the bundle as its
// working directory (as the Go shim's runc does): wrappers named by Options.BinaryName may read
// `config.json` and the pid file from there.
import { promises as fsp, statSync } from 'node:fs';
import * as os from 'node:os';
import { endInput, spawnChild, type SpawnStdio } from '../process/spawn';
import { processTree } from '../sys/children';
import { isErrnoError } from '../sys/native';
import { RuntimeError } from './runtime-error';

export interface RuncConfig {
  /** runc binary: `runc` from PATH unless Options.binary_name says otherwise. */
  binary: string;
  /** Per-namespace state root: `<root>/<namespace>`. */
  root: string;
  /** JSON log file, `<bundle>/log.json`. */
  logPath: string;
  systemdCgroup?: boolean;
  /** CRIU binary for checkpoint/restore (`--criu`). */
  criuPath?: string;
  /**
   * Working directory of every runc command: the container's bundle. While it does not exist
   * (containerd removed it), `/`.
   */
  workDir?: string;
}

export interface CreateOptions {
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  /** The container's stdio: fds handed to runc (and through it to the container). */
  stdio?: RuncStdio;
}

export interface ExecOptions {
  processSpecPath: string;
  pidFile: string;
  consoleSocket?: string;
  stdio?: RuncStdio;
}

/** `runc checkpoint` flags (go-runc's CheckpointOpts, the ones the shim uses). */
export interface CheckpointOptions {
  imagePath: string;
  workPath: string;
  parentPath?: string;
  /** Keep the container running after the dump (`--leave-running`); false = exit. */
  leaveRunning: boolean;
  tcpEstablished?: boolean;
  extUnixSk?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  emptyNamespaces?: string[];
  manageCgroupsMode?: string;
}

/**
 * `runc restore --detach` flags; the restored init is reaped by us (`--no-subreaper`).
 * runc restore has no --parent-path: CRIU finds a parent image through a `parent` link in
 * the image directory.
 */
export interface RestoreOptions {
  imagePath: string;
  workPath: string;
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
  tcpEstablished?: boolean;
  extUnixSk?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  manageCgroupsMode?: string;
  stdio?: RuncStdio;
  /** Give up after this long: runc and every process below it (CRIU, restored tasks) are killed. */
  timeoutMs?: number;
}

export interface RunResult { stdout: string; stderr: string }

/**
 * What runc and CRIU write for the shim — log.json and init.pid in the bundle, CRIU's images,
 * logs and stats — is root's alone (issue 12: CRIU writes stats-dump 0644, runc its pid and log
 * files 0644 under containerd's umask). A container's init is unaffected (runc gives it 0022).
 */
export const PRIVATE_UMASK = 0o077;

/**
 * runc's fds 0/1/2: an fd (the container's pipe end; ProcessIO.childStdio gives these and
 * 'ignore'), 'ignore' (/dev/null) or 'pipe' (captured by Runc.run).
 */
export type RuncStdio = readonly [SpawnStdio, SpawnStdio, SpawnStdio];

/**
 * The environment runc runs with: the daemon's own, as "KEY=value" strings made at the first
 * runc call. Reading `process.env` goes key by key through its C++ accessors (~1 ms of the
 * daemon's CPU with a desktop-sized environment); the daemon's environment does not change once
 * start-up is over. The umask is set for the spawn only (PRIVATE_UMASK, below): posix_spawnp
 * returns once the child has exec'd, so no other JavaScript runs meanwhile; a file a threadpool
 * thread happens to create in that instant is made more private, never less.
 */
let runcEnvironment: string[] | undefined;

export class Runc {
  constructor(readonly config: RuncConfig) {}

  /** go-runc's global flags, in its order (Runc.args). */
  private globalArgs(): string[] {
    const a = ['--root', this.config.root, '--log', this.config.logPath, '--log-format', 'json'];
    if (this.config.criuPath) a.push('--criu', this.config.criuPath);
    if (this.config.systemdCgroup) a.push('--systemd-cgroup');
    return a;
  }

  private workDir(): string {
    const dir = this.config.workDir;
    if (!dir) return '/';
    try {
      return statSync(dir).isDirectory() ? dir : '/';
    } catch {
      return '/';
    }
  }

  /** A runc that could not be started, whichever way the spawn reported it. */
  private spawnFailed(what: string, err: unknown): RuntimeError {
    if (isErrnoError(err, 'ENOENT')) return new RuntimeError(`${what}: runc binary "${this.config.binary}" not found in PATH`);
    return new RuntimeError(`${what}: ${(err as Error).message}`);
  }

  /**
   * Runs one runc command in the bundle. On failure the error carries the last line the
   * runtime logged at level error, fatal or panic (log.json, this command's lines only), else
   * its stderr, prefixed with `what` (e.g. "OCI runtime create failed").
   */
  async run(args: string[], what: string, opts: { stdio?: RuncStdio; input?: string; timeoutMs?: number; inheritUmask?: boolean } = {}): Promise<RunResult> {
    const logOffset = fileSize(this.config.logPath);
    const stdio: RuncStdio = opts.stdio ?? [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    let child;
    try {
      child = spawnChild(this.config.binary, [...this.globalArgs(), ...args], {
        stdio, cwd: this.workDir(), env: runcEnvironment ??= Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`),
        umask: opts.inheritUmask ? undefined : PRIVATE_UMASK,
      });
    } catch (err) {
      throw this.spawnFailed(what, err);
    }
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    if (opts.input !== undefined && child.stdin) endInput(child.stdin, opts.input);
    let killed: number[] | undefined;
    const pid = child.pid;
    const timer = opts.timeoutMs === undefined || pid < 0 ? undefined : setTimeout(() => { killed = killProcessTree(pid); }, opts.timeoutMs);
    // child_process (the fallback on kernels without pidfd_open) reports a failed spawn here.
    const { code: exitCode, signal } = await child.closed
      .catch((err: unknown) => { throw this.spawnFailed(what, err); })
      .finally(() => clearTimeout(timer));
    const code = exitCode ?? 128 + (signal ? signalNumber(signal) : 0);
    if (killed) {
      const detail = `no result within ${Math.round(opts.timeoutMs! / 1000)} s; runc and the ${killed.length - 1} processes under it (CRIU) were killed`;
      throw new RuntimeError(`${what}: ${detail}`, detail);
    }
    if (code !== 0) {
      const logged = await lastLoggedError(this.config.logPath, logOffset);
      // A runc killed in the middle (OOM killer, a crash) says nothing itself: say that it was.
      const killedBy = signal ? `runc was killed by ${signal}` : '';
      const detail = [killedBy, logged || stderr.trim() || stdout.trim()].filter(Boolean).join('; ') || `exit status ${code}`;
      throw new RuntimeError(`${what}: ${detail}`, detail);
    }
    return { stdout, stderr };
  }

  create(id: string, bundle: string, o: CreateOptions): Promise<RunResult> {
    const args = ['create', '--bundle', bundle, '--pid-file', o.pidFile];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    if (o.noPivot) args.push('--no-pivot');
    if (o.noNewKeyring) args.push('--no-new-keyring');
    args.push(id);
    return this.run(args, 'OCI runtime create failed', { stdio: o.stdio ?? ['ignore', 'ignore', 'ignore'] });
  }

  start(id: string): Promise<RunResult> {
    return this.run(['start', id], 'OCI runtime start failed');
  }

  exec(id: string, o: ExecOptions): Promise<RunResult> {
    const args = ['exec', '--process', o.processSpecPath];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    args.push('--detach', '--pid-file', o.pidFile, id);
    // The exec'd process inherits runc's umask (runc sets 0022 only for a container's init).
    return this.run(args, 'OCI runtime exec failed', { stdio: o.stdio ?? ['ignore', 'ignore', 'ignore'], inheritUmask: true });
  }

  kill(id: string, signal: number, all = false): Promise<RunResult> {
    const args = ['kill'];
    if (all) args.push('--all');
    args.push(id, String(signal));
    return this.run(args, 'runc kill failed');
  }

  delete(id: string, force = false): Promise<RunResult> {
    const args = ['delete'];
    if (force) args.push('--force');
    args.push(id);
    return this.run(args, 'OCI runtime delete failed');
  }

  pause(id: string): Promise<RunResult> { return this.run(['pause', id], 'OCI runtime pause failed'); }
  resume(id: string): Promise<RunResult> { return this.run(['resume', id], 'OCI runtime resume failed'); }

  async state(id: string): Promise<{ status: string; pid: number }> {
    const r = await this.run(['state', id], 'OCI runtime state failed');
    return JSON.parse(r.stdout) as { status: string; pid: number };
  }

  async ps(id: string): Promise<number[]> {
    const r = await this.run(['ps', '--format', 'json', id], 'runc ps failed');
    const pids = JSON.parse(r.stdout || '[]') as number[] | null;
    return pids ?? [];
  }

  checkpoint(id: string, o: CheckpointOptions): Promise<RunResult> {
    const args = ['checkpoint', ...criuArgs(o, o.parentPath, o.emptyNamespaces)];
    if (o.leaveRunning) args.push('--leave-running');
    args.push(id);
    return this.run(args, 'runc checkpoint failed');
  }

  restore(id: string, bundle: string, o: RestoreOptions): Promise<RunResult> {
    const args = ['restore', ...criuArgs(o), '--detach', '--pid-file', o.pidFile];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    if (o.noPivot) args.push('--no-pivot');
    // go-runc's spelling (RestoreOpts.args); runc's flag parser takes one dash or two.
    args.push('-no-subreaper', '--bundle', bundle, id);
    return this.run(args, 'OCI runtime restore failed', { stdio: o.stdio ?? ['ignore', 'ignore', 'ignore'], timeoutMs: o.timeoutMs });
  }

  /** `runc update --resources -`: resources as OCI LinuxResources JSON on stdin. */
  update(id: string, resourcesJson: string): Promise<RunResult> {
    return this.run(['update', '--resources', '-', id], 'OCI runtime update failed', { input: resourcesJson });
  }
}

/** The CRIU flags checkpoint and restore share, in go-runc's order (CheckpointOpts.args). */
function criuArgs(o: CheckpointOptions | RestoreOptions, parentPath?: string, emptyNamespaces: string[] = []): string[] {
  const a = ['--image-path', o.imagePath, '--work-path', o.workPath];
  if (parentPath) a.push('--parent-path', parentPath);
  if (o.tcpEstablished) a.push('--tcp-established');
  if (o.extUnixSk) a.push('--ext-unix-sk');
  if (o.shellJob) a.push('--shell-job');
  if (o.fileLocks) a.push('--file-locks');
  if (o.manageCgroupsMode) a.push('--manage-cgroups-mode', o.manageCgroupsMode);
  for (const ns of emptyNamespaces) a.push('--empty-ns', ns);
  return a;
}

/** The log's size before a command: one stat on the main thread (a threadpool round trip was slower, per runc call). */
function fileSize(path: string): number {
  try { return statSync(path).size; } catch { return 0; }
}

/** How much of a command's log lines is read for its failure (the end of them). */
const MAX_LOG_TAIL = 1024 * 1024;
/** A runtime's message is cut to this many characters in the error (runc's are one line). */
const MAX_MESSAGE = 4096;

/** Log levels whose message says why the runtime failed (runc logs error; other runtimes fatal, panic). */
const FAILURE_LEVELS = new Set(['error', 'fatal', 'panic']);

/** The last error, fatal or panic message the runtime wrote to its JSON log after `offset`. */
export async function lastLoggedError(logPath: string, offset = 0): Promise<string> {
  let text: string;
  try {
    const fh = await fsp.open(logPath, 'r');
    try {
      const { size } = await fh.stat();
      // The failure is at the end; a runtime logging without bound must not cost us memory.
      const from = Math.max(offset, size - MAX_LOG_TAIL);
      const buf = Buffer.alloc(Math.max(0, size - from));
      await fh.read(buf, 0, buf.length, from);
      text = buf.toString('utf8');
    } finally { await fh.close(); }
  } catch { return ''; }
  let msg = '';
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level && FAILURE_LEVELS.has(entry.level) && typeof entry.msg === 'string' && entry.msg.trim()) msg = entry.msg.trim().slice(0, MAX_MESSAGE);
    } catch { /* not JSON: ignore */ }
  }
  return msg;
}

/** SIGKILLs `pid` and everything below it, until no new process shows up; returns the pids. */
function killProcessTree(pid: number): number[] {
  const killed = new Set<number>();
  for (let round = 0; round < 10; round++) {
    const fresh = processTree(pid).filter((p) => !killed.has(p));
    if (fresh.length === 0 && round > 0) break;
    for (const p of fresh) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone already */ }
      killed.add(p);
    }
  }
  return [...killed];
}

function signalNumber(sig: NodeJS.Signals): number {
  return os.constants.signals[sig] ?? 0;
}
