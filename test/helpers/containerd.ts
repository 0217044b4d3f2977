// Starts a private containerd (1.7 from Debian trixie, or 2.1 extracted beside it) for the
// e2e tests: its own root, state, sockets and config, its log in a file, and `ctr` bound to
// it. Everything it spawns is tracked by pid and ended by pid, so a test run never touches
// another containerd or another engineer's containers on the same machine.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildPauseImage, buildTestImage, TestImage } from './image';
import { CriClient } from './cri';
import { criConfigToml, criRuncRoots } from './cri-config';
import { exists, findShimDaemons, mountsUnder, ProcInfo, sleep, waitFor } from './procfs';

export type ContainerdVersion = '1.7' | '2.1';

export interface StartOptions {
  version: ContainerdVersion;
  /** Puts FERRY_PROTOCOL=grpc in containerd's environment; containerd passes it on to shims. */
  grpcShim?: boolean;
  /** Import the busybox test image right after start (default true). */
  importImage?: boolean;
  /** Extra environment for containerd (and so for its shims), e.g. FERRY_GROUP_BY_NAMESPACE=1. */
  env?: Record<string, string>;
  /**
   * Enables containerd's CRI plugin (off by default: the ctr tests do not need it) with the
   * runtime handlers of test/helpers/cri-config.ts, and imports the busybox and pause images
   * into CRI's namespace `k8s.io`.
   */
  cri?: boolean;
}

/** The containerd namespace the CRI plugin works in (always, whatever the pod's namespace). */
export const CRI_NAMESPACE = 'k8s.io';

export interface CtrOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  /** containerd namespace (default: the instance's own; CRI_NAMESPACE for what CRI made). */
  namespace?: string;
}

export interface CtrResult {
  /** Exit code, or null when ctr was killed by a signal (signal is then set). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CtrEvent {
  timestamp: string;
  namespace: string;
  topic: string;
  /** The event decoded by ctr and printed as Go JSON: snake_case fields, zero values omitted. */
  event: Record<string, unknown>;
}

export interface EventStream {
  /** Events seen so far, in arrival order. */
  readonly events: CtrEvent[];
  /** Waits until `pred` matches an event (returns it) or the timeout passes (throws). */
  waitFor(pred: (e: CtrEvent) => boolean, timeoutMs?: number): Promise<CtrEvent>;
  /** What `ctr events` wrote on stderr (it warns there about events it cannot decode). */
  stderr(): string;
  stop(): Promise<void>;
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CONTAINERD2_DIR = process.env.FERRY_CONTAINERD2_DIR ?? '/opt/ferry/containerd-2.1';
const TASK_RUNTIME_DIR = 'io.containerd.runtime.v2.task';

function binDir(version: ContainerdVersion): string {
  return version === '2.1' ? path.join(CONTAINERD2_DIR, 'usr/bin') : '/usr/bin';
}

// The CRI plugins (1.7: one; 2.x: images, runtime, the gRPC service and the sandbox
// controller), disabled unless a test asks for CRI.
const CRI_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.cri.v1.images',
  'io.containerd.cri.v1.runtime',
  'io.containerd.podsandbox.controller.v1.podsandbox',
];

// Plugins the tests never use; disabling them keeps start-up fast and the log readable.
// Unknown names are ignored, so one list serves both versions.
const DISABLED_PLUGINS = [
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.erofs',
  'io.containerd.differ.v1.erofs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
  'io.containerd.nri.v1.nri',
];

function configToml(version: ContainerdVersion, dir: string, cri: boolean): string {
  const q = (s: string) => JSON.stringify(s); // TOML basic strings accept JSON string escapes
  const disabled = cri ? DISABLED_PLUGINS : [...CRI_PLUGINS, ...DISABLED_PLUGINS];
  // containerd 1.7 reads schema version 2, containerd 2.x version 3; the keys used here are
  // top-level ones both schemas share. No runtime has to be declared for the task API:
  // containerd resolves `io.containerd.ferry.v2` to `containerd-shim-ferry-v2` on PATH.
  return [
    `version = ${version === '2.1' ? 3 : 2}`,
    `root = ${q(path.join(dir, 'root'))}`,
    `state = ${q(path.join(dir, 'state'))}`,
    `temp = ${q(path.join(dir, 'tmp'))}`,
    `disabled_plugins = [${disabled.map(q).join(', ')}]`,
    '',
    '[grpc]',
    `  address = ${q(path.join(dir, 'containerd.sock'))}`,
    '',
    '[ttrpc]',
    `  address = ${q(path.join(dir, 'containerd.sock.ttrpc'))}`,
    '',
    '[debug]',
    `  address = ${q(path.join(dir, 'debug.sock'))}`,
    '  level = "debug"',
    '',
    ...(cri
      ? [criConfigToml({ version, repoRoot: REPO_ROOT, dir, pauseImage: buildPauseImage().name, registryConfigDir: path.join(dir, 'certs.d') }), '']
      : []),
  ].join('\n');
}

let instances = 0;

export class Containerd {
  readonly version: ContainerdVersion;
  readonly grpcShim: boolean;
  private readonly extraEnv: Record<string, string>;
  /** Private temp dir holding root/, state/, tmp/, the sockets, config.toml and containerd.log. */
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  /** containerd's gRPC socket path (what ctr --address and shims' -address get). */
  readonly address: string;
  /** A namespace unique to this instance: runc's state dir (/run/containerd/runc/<ns>) is shared machine-wide. */
  readonly namespace: string;
  readonly ctrPath: string;
  readonly logPath: string;
  /** Whether the CRI plugin is on (StartOptions.cri). */
  readonly cri: boolean;
  /** CRI's registry config_path: a test puts `<host:port>/hosts.toml` here. */
  readonly registryConfigDir: string;
  image?: TestImage;

  private proc?: ChildProcess;
  private exited?: Promise<void>;
  private readonly children = new Set<ChildProcess>();
  private readonly configPath: string;

  constructor(opts: StartOptions) {
    this.version = opts.version;
    this.grpcShim = opts.grpcShim ?? false;
    this.extraEnv = opts.env ?? {};
    this.cri = opts.cri ?? false;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ctd-'));
    this.root = path.join(this.dir, 'root');
    this.state = path.join(this.dir, 'state');
    this.address = path.join(this.dir, 'containerd.sock');
    this.logPath = path.join(this.dir, 'containerd.log');
    this.configPath = path.join(this.dir, 'config.toml');
    this.registryConfigDir = path.join(this.dir, 'certs.d');
    this.namespace = `ferry-test-${process.pid}-${++instances}`;
    this.ctrPath = path.join(binDir(this.version), 'ctr');
    for (const d of [this.root, this.state, path.join(this.dir, 'tmp')]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    fs.writeFileSync(this.configPath, configToml(this.version, this.dir, this.cri));
  }

  /** containerd's pid while it runs. */
  get pid(): number | undefined {
    return this.proc?.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  /** The environment containerd runs with, and so the one its shims inherit. */
  private env(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    const pathDirs = [path.join(REPO_ROOT, 'shim')];
    // 2.1 must find its own containerd-shim-runc-v2 (and ctr), not 1.7's in /usr/bin.
    if (this.version === '2.1') pathDirs.unshift(binDir('2.1'));
    env.PATH = [...pathDirs, env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':');
    if (this.grpcShim) env.FERRY_PROTOCOL = 'grpc';
    else delete env.FERRY_PROTOCOL;
    // containerd 2.x speaks task API v3 to shims that bootstrap as version 3 (1.7 refuses 3):
    // the 2.1 lane exercises containerd.task.v3.Task, the 1.7 lanes containerd.task.v2.Task.
    if (this.version === '2.1') env.FERRY_TASK_API_VERSION = '3';
    else delete env.FERRY_TASK_API_VERSION;
    return { ...env, ...this.extraEnv };
  }

  /** Launches containerd and waits until `ctr version` answers. */
  async launch(): Promise<void> {
    const logFd = fs.openSync(this.logPath, 'a');
    try {
      const proc = spawn(path.join(binDir(this.version), 'containerd'), ['--config', this.configPath], {
        env: this.env(),
        stdio: ['ignore', logFd, logFd],
      });
      this.proc = proc;
      this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
      proc.once('error', () => undefined); // reported through the readiness check below
    } finally {
      fs.closeSync(logFd);
    }
    const deadline = Date.now() + 30000;
    for (;;) {
      if (this.pid === undefined) throw new Error(`containerd ${this.version} exited during start:\n${this.logTail()}`);
      const r = await this.ctr(['version'], { timeoutMs: 5000 });
      if (r.code === 0) return;
      if (Date.now() > deadline) throw new Error(`containerd ${this.version} did not answer:\n${r.stderr}\n${this.logTail()}`);
      await sleep(100);
    }
  }

  /** Imports the busybox test image (idempotent per instance); with CRI, into k8s.io too, with the pause image. */
  async importImage(): Promise<TestImage> {
    if (this.image) return this.image;
    const image = buildTestImage();
    await this.importInto(image, this.namespace);
    if (this.cri) {
      await this.importInto(image, CRI_NAMESPACE);
      await this.importInto(buildPauseImage(), CRI_NAMESPACE);
    }
    this.image = image;
    return image;
  }

  private async importInto(image: TestImage, namespace: string): Promise<void> {
    const r = await this.ctr(['images', 'import', image.tarPath], { timeoutMs: 60000, namespace });
    if (r.code !== 0) throw new Error(`ctr images import failed: ${r.stderr}${r.stdout}`);
    const check = await this.ctr(['images', 'check', `name==${image.name}`], { namespace });
    if (!/complete/.test(check.stdout)) throw new Error(`test image not complete after import: ${check.stdout}${check.stderr}`);
  }

  /** A CRI client of this containerd (close it when done). */
  criClient(): CriClient {
    if (!this.cri) throw new Error('this containerd was started without CRI (StartOptions.cri)');
    return new CriClient({ address: this.address });
  }

  log(): string {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines = 40): string {
    return this.log().split('\n').slice(-lines).join('\n');
  }

  /** Spawns ctr bound to this containerd and namespace; the process is tracked and ended by stop(). */
  spawnCtr(args: string[], stdin: 'pipe' | 'ignore' = 'ignore', namespace = this.namespace): ChildProcess {
    const child = spawn(this.ctrPath, ['--address', this.address, '--namespace', namespace, ...args], {
      env: this.env(),
      stdio: [stdin, 'pipe', 'pipe'],
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Runs ctr to completion and collects its output (killed by pid after timeoutMs). */
  ctr(args: string[], opts: CtrOptions = {}): Promise<CtrResult> {
    const child = this.spawnCtr(args, opts.input === undefined ? 'ignore' : 'pipe', opts.namespace);
    return collect(child, opts);
  }

  /** Runs `ctr events` in the background and parses every line it prints. */
  async events(): Promise<EventStream> {
    const child = this.spawnCtr(['events']);
    const events: CtrEvent[] = [];
    const waiters = new Set<() => void>();
    let buffered = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const ev = parseEventLine(line);
        if (process.env.FERRY_DEBUG_EVENTS) console.log('RAW', line);
        if (ev) events.push(ev);
      }
      for (const w of waiters) w();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr += d));
    const stream: EventStream = {
      events,
      waitFor: (pred, timeoutMs = 15000) =>
        new Promise((resolve, reject) => {
          const check = () => {
            const hit = events.find(pred);
            if (hit) {
              waiters.delete(check);
              clearTimeout(timer);
              resolve(hit);
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`event not seen in ${timeoutMs} ms; ctr events stderr: ${stderr}\nsaw:\n${events.map((e) => `${e.topic} ${JSON.stringify(e.event)}`).join('\n')}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        }),
      stderr: () => stderr,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const gone = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await gone;
        }
      },
    };
    // There is no "subscribed" signal: label our namespace (which publishes
    // /namespaces/update) until that event comes through, so no later event is missed.
    for (let i = 0; ; i++) {
      await this.ctr(['namespaces', 'label', this.namespace, `ferry-events-sync=${i}`]);
      try {
        await stream.waitFor((e) => e.topic === '/namespaces/update', 300);
        break;
      } catch (err) {
        if (i > 50) {
          await stream.stop();
          throw err;
        }
      }
    }
    return stream;
  }

  /** The bundle directory containerd creates for a task. */
  bundleDir(id: string, namespace = this.namespace): string {
    return path.join(this.state, TASK_RUNTIME_DIR, namespace, id);
  }

  /** Namespaces this instance's tasks live in: its own, and k8s.io with CRI. */
  private namespaces(): string[] {
    return this.cri ? [this.namespace, CRI_NAMESPACE] : [this.namespace];
  }

  /** Shim daemon processes serving container `id` (or any container, without an id). */
  shimDaemons(id?: string): ProcInfo[] {
    return findShimDaemons(this.address, id);
  }

  /**
   * Where the Go shim puts its socket: /run/containerd/s/<sha256(address/namespace/id)>,
   * whatever containerd's state dir is (pkg/shim SocketAddress uses the compiled-in default).
   */
  goShimSocketPath(id: string): string {
    const hash = createHash('sha256').update(path.join(this.address, this.namespace, id)).digest('hex');
    return path.join('/run/containerd/s', hash);
  }

  /** Stops containerd by pid (shims keep running) and starts it again on the same dirs. */
  async restart(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await this.stopDaemon(signal);
    await this.launch();
  }

  private async stopDaemon(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (!proc || this.pid === undefined) return;
    proc.kill(signal);
    if (!(await settlesWithin(this.exited!, 15000))) {
      proc.kill('SIGKILL');
      await this.exited;
    }
  }

  /**
   * Removes every trace: tasks and containers (through ctr while containerd still answers),
   * containerd itself, then by pid anything left that belongs to this instance (ctr children,
   * shim daemons, their runc containers), mounts under the temp dir, shim sockets, the dir.
   */
  async stop(): Promise<void> {
    const problems: string[] = [];
    const sockets = this.shimSocketPaths();
    if (this.pid !== undefined) {
      if (this.cri) {
        const cri = this.criClient();
        try {
          await cri.removeAllPods();
        } catch (err) {
          problems.push(`CRI pod removal: ${String(err)}`);
        } finally {
          cri.close();
        }
      }
      for (const namespace of this.namespaces()) {
        try {
          await this.removeAllTasks(namespace);
        } catch (err) {
          problems.push(String(err));
        }
      }
    }
    for (const child of this.children) if (child.pid) killPid(child.pid, 'SIGKILL');
    await this.stopDaemon('SIGTERM');
    for (const shim of this.shimDaemons()) killPid(shim.pid, 'SIGKILL');
    await waitFor(() => this.shimDaemons().length === 0, 5000);
    this.cleanRuncState();
    for (const s of sockets) fs.rmSync(s, { force: true });
    for (const m of mountsUnder(this.dir).reverse()) {
      try {
        execFileSync('umount', [m.mountPoint], { stdio: 'ignore' });
      } catch {
        try {
          execFileSync('umount', ['-l', m.mountPoint], { stdio: 'ignore' });
        } catch {
          problems.push(`could not unmount ${m.mountPoint}`);
        }
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    if (problems.length) console.warn(`containerd cleanup: ${problems.join('; ')}`);
  }

  private async removeAllTasks(namespace: string): Promise<void> {
    const tasks = await this.ctr(['tasks', 'ls', '--quiet'], { timeoutMs: 10000, namespace });
    for (const id of tasks.stdout.split('\n').filter(Boolean)) {
      await this.ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], { timeoutMs: 10000, namespace });
      await this.ctr(['tasks', 'rm', '--force', id], { timeoutMs: 15000, namespace });
    }
    const containers = await this.ctr(['containers', 'ls', '--quiet'], { timeoutMs: 10000, namespace });
    for (const id of containers.stdout.split('\n').filter(Boolean)) {
      await this.ctr(['containers', 'rm', id], { timeoutMs: 10000, namespace });
    }
  }

  /**
   * The shim's socket path as containerd recorded it in the bundle: `bootstrap.json`
   * (containerd 2.x writes it) or `address` (containerd 1.7 reads it; the shim writes it).
   * Read it while the task exists: the bundle goes with the task.
   */
  shimSocketPath(id: string, namespace = this.namespace): string | undefined {
    for (const file of ['bootstrap.json', 'address']) {
      try {
        const socket = socketPathFromAddressFile(fs.readFileSync(path.join(this.bundleDir(id, namespace), file), 'utf8'));
        if (socket) return socket;
      } catch {
        /* not there */
      }
    }
    return undefined;
  }

  // Shim sockets of all bundles, so they can be removed if a killed shim could not.
  private shimSocketPaths(): string[] {
    return this.namespaces().flatMap((namespace) =>
      safeReaddir(path.join(this.state, TASK_RUNTIME_DIR, namespace))
        .map((id) => this.shimSocketPath(id, namespace))
        .filter((s): s is string => s !== undefined),
    );
  }

  // Containers whose shim was SIGKILLed keep running under runc; end them through runc's
  // state for this instance's namespace (unique to this instance, so never someone else's).
  private cleanRuncState(): void {
    const roots = [path.join('/run/containerd/runc', this.namespace)];
    // CRI's handlers keep runc state in private roots (cri-config.ts), never in the shared k8s.io one.
    if (this.cri) roots.push(...criRuncRoots(this.dir).map((r) => path.join(r, CRI_NAMESPACE)));
    for (const runcRoot of roots) this.cleanRuncRoot(runcRoot);
  }

  private cleanRuncRoot(runcRoot: string): void {
    for (const id of safeReaddir(runcRoot)) {
      try {
        execFileSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore', timeout: 10000 });
      } catch {
        /* already gone */
      }
    }
    fs.rmSync(runcRoot, { recursive: true, force: true });
  }
}

/** The unix socket path in a shim `address` file: plain `unix://PATH` or the JSON bootstrap form. */
export function socketPathFromAddressFile(content: string): string | undefined {
  let address = content.trim();
  if (address.startsWith('{')) {
    try {
      address = String((JSON.parse(address) as { address?: string }).address ?? '');
    } catch {
      return undefined;
    }
  }
  if (address.startsWith('unix://')) address = address.slice('unix://'.length);
  return address.startsWith('/') ? address : undefined;
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Whether `p` settles within `ms` (the timer is cleared so it never holds the event loop). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** `TIMESTAMP NAMESPACE TOPIC JSON` — the timestamp is Go's time.String() and holds spaces. */
export function parseEventLine(line: string): CtrEvent | undefined {
  const m = /^(.+?) (\S+) (\/\S*) ?(.*)$/.exec(line.trim());
  if (!m) return undefined;
  let event: Record<string, unknown> = {};
  if (m[4]) {
    try {
      event = JSON.parse(m[4]) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  return { timestamp: m[1]!, namespace: m[2]!, topic: m[3]!, event };
}

/** Collects a child's output and exit; kills it by pid after the timeout. */
export function collect(child: ChildProcess, opts: CtrOptions = {}): Promise<CtrResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => {
      err.push(Buffer.from(`\n[test harness: killed after ${opts.timeoutMs ?? 60000} ms]`));
      if (child.pid) killPid(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? 60000);
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // EPIPE when ctr exits before reading it all
      child.stdin.end(opts.input);
    }
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    };
    child.once('error', (e) => {
      err.push(Buffer.from(String(e)));
      finish(-1, null);
    });
    // 'close' (not 'exit'): all output has been read by then.
    child.once('close', (code, signal) => finish(code, signal));
  });
}

/** Starts a private containerd, imports the test image, and returns the handle. */
export async function startContainerd(opts: StartOptions): Promise<Containerd> {
  const c = new Containerd(opts);
  try {
    await c.launch();
    if (opts.importImage ?? true) await c.importImage();
  } catch (err) {
    const log = c.logTail();
    await c.stop();
    throw new Error(`${String(err)}\n--- containerd log ---\n${log}`);
  }
  return c;
}


