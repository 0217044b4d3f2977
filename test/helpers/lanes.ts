// The e2e "lanes": which containerd, which runtime, which shim protocol. Every e2e test runs
// once per lane, so the same assertions that pass against containerd's Go shim
// (io.containerd.runc.v2) are the ones ferry (io.containerd.ferry.v2) must pass.
//
//   FERRY_E2E_RUNTIMES   comma list of runtimes (default io.containerd.ferry.v2)
//   FERRY_E2E_CONTAINERD comma list of containerd versions to run (default 1.7,2.1)
import { ChildProcess } from 'node:child_process';
import { collect, Containerd, CtrResult, startContainerd, type StartOptions } from './containerd';
import * as fs from 'node:fs';
import { mountsUnder, readProc, waitFor } from './procfs';

export interface Lane {
  containerd: '1.7' | '2.1';
  runtime: string;
  /** Start containerd with FERRY_PROTOCOL=grpc so ferry bootstraps over gRPC. */
  grpc: boolean;
  /** Human-readable lane name used in test titles. */
  name: string;
}

export const FERRY_RUNTIME = 'io.containerd.ferry.v2';

export function lanes(): Lane[] {
  const runtimes = (process.env.FERRY_E2E_RUNTIMES ?? FERRY_RUNTIME).split(',').map((s) => s.trim()).filter(Boolean);
  const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim());
  const out: Lane[] = [];
  for (const runtime of runtimes) {
    const add = (containerd: '1.7' | '2.1', grpc: boolean) => {
      if (versions.includes(containerd)) {
        out.push({ containerd, runtime, grpc, name: `containerd ${containerd} ${grpc ? 'grpc' : 'ttrpc'} ${runtime}` });
      }
    };
    add('1.7', false);
    // The gRPC switch is ferry's; the Go shim only speaks ttrpc to containerd.
    if (runtime !== 'io.containerd.runc.v2') add('1.7', true);
    add('2.1', false);
  }
  return out;
}

/** True for containerd's own Go shim (the reference implementation). */
export const isGoShim = (lane: Lane): boolean => lane.runtime.startsWith('io.containerd.runc.');

/**
 * Registers beforeAll/afterAll that start a private containerd for the lane and always stop
 * it (even when tests fail), and returns a getter for it.
 */
export function useContainerd(lane: Lane, opts: Omit<StartOptions, 'version' | 'grpcShim'> = {}): () => Containerd {
  let c: Containerd | undefined;
  beforeAll(async () => {
    c = await startContainerd({ ...opts, version: lane.containerd, grpcShim: lane.grpc });
  }, 120000);
  afterAll(async () => {
    await c?.stop();
  }, 120000);
  return () => {
    if (!c) throw new Error('containerd did not start');
    return c;
  };
}

let counter = 0;
/** A container id unique within the test run. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** `ctr run --rm --runtime R IMAGE id args...` in the foreground, with optional stdin. */
export function ctrRun(c: Containerd, lane: Lane, id: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number; runFlags?: string[] } = {}): Promise<CtrResult> {
  return c.ctr(['run', '--rm', '--runtime', lane.runtime, ...(opts.runFlags ?? []), c.image!.name, id, ...args], opts);
}

/** Starts a foreground `ctr run --rm` in the background; resolves with its result when it ends. */
export function ctrRunBackground(c: Containerd, lane: Lane, id: string, args: string[], runFlags: string[] = []): { child: ChildProcess; done: Promise<CtrResult> } {
  const child = c.spawnCtr(['run', '--rm', '--runtime', lane.runtime, ...runFlags, c.image!.name, id, ...args]);
  return { child, done: collect(child, { timeoutMs: 100000 }) };
}

/** `ctr run -d`: the task keeps running after ctr returns. */
export function ctrRunDetached(c: Containerd, lane: Lane, id: string, args: string[], runFlags: string[] = []): Promise<CtrResult> {
  return c.ctr(['run', '-d', '--runtime', lane.runtime, ...runFlags, c.image!.name, id, ...args]);
}

export interface TaskRow {
  id: string;
  pid: number;
  status: string;
}

/** Parses `ctr task ls` (TASK PID STATUS). */
export async function taskList(c: Containerd): Promise<TaskRow[]> {
  const r = await c.ctr(['task', 'ls']);
  if (r.code !== 0) throw new Error(`ctr task ls failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3)
    .map(([id, pid, status]) => ({ id: id!, pid: Number(pid), status: status! }));
}

export async function taskRow(c: Containerd, id: string): Promise<TaskRow | undefined> {
  return (await taskList(c)).find((t) => t.id === id);
}

/** Waits until the task reports `status` (e.g. RUNNING, STOPPED); returns its row or throws. */
export async function waitForStatus(c: Containerd, id: string, status: string, timeoutMs = 15000): Promise<TaskRow> {
  const row = await waitFor(async () => {
    const r = await taskRow(c, id);
    return r?.status === status ? r : undefined;
  }, timeoutMs, 100);
  if (!row) throw new Error(`task ${id} never reached ${status}; now: ${JSON.stringify(await taskRow(c, id))}\n${c.logTail(20)}`);
  return row;
}

/** Failure text for a ctr call, with containerd's log tail (for assertion messages). */
export function explain(c: Containerd, r: CtrResult): string {
  return `code=${r.code} signal=${r.signal}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}\n--- containerd log ---\n${c.logTail(30)}`;
}

/** Asserts ctr's exit code, failing with ctr's output and containerd's log tail. */
export function expectExit(c: Containerd, r: CtrResult, code: number): void {
  if (r.code !== code) throw new Error(`expected ctr to exit ${code}\n${explain(c, r)}`);
}

/**
 * `echo INPUT | ctr run --rm ... args`, made deterministic. ctr closes the task's stdin
 * (Task.CloseIO) when its own stdin hits EOF — but only if the task already exists: an EOF
 * read before NewTask returned is dropped and the container never sees EOF (`cat` then hangs
 * forever, with the Go shim too). So the input is written at once and stdin ends only after
 * the task is listed.
 */
export async function ctrRunWithStdin(c: Containerd, lane: Lane, id: string, args: string[], input: string | Buffer): Promise<CtrResult> {
  const child = c.spawnCtr(['run', '--rm', '--runtime', lane.runtime, c.image!.name, id, ...args], 'pipe');
  const done = collect(child, { timeoutMs: 60000 });
  child.stdin!.on('error', () => undefined);
  child.stdin!.write(input);
  await waitFor(async () => (await taskRow(c, id))?.status === 'RUNNING' || child.exitCode !== null, 15000, 50);
  child.stdin!.end();
  return done;
}

/** What a running task's shim looks like from outside, captured so its cleanup can be checked. */
export interface ShimFootprint {
  id: string;
  shimPid: number;
  containerPid: number;
  socket: string | undefined;
  bundle: string;
}

/** Captures the shim daemon, socket and bundle of a RUNNING task (exactly one shim daemon). */
export async function shimFootprint(c: Containerd, id: string): Promise<ShimFootprint> {
  const row = await waitForStatus(c, id, 'RUNNING');
  const shims = c.shimDaemons(id);
  if (shims.length !== 1) throw new Error(`expected one shim daemon for ${id}, found ${JSON.stringify(shims)}`);
  return { id, shimPid: shims[0]!.pid, containerPid: row.pid, socket: c.shimSocketPath(id), bundle: c.bundleDir(id) };
}

/**
 * Everything a shim may leave behind, as a list of readable problems (empty = clean):
 * its daemon (running or zombie), the container's process, mounts under the bundle, the
 * socket file, the bundle directory. Waits up to timeoutMs for them to go.
 */
export async function leftovers(f: ShimFootprint, timeoutMs = 10000): Promise<string[]> {
  const check = (): string[] => {
    const problems: string[] = [];
    const shim = readProc(f.shimPid);
    if (shim) problems.push(`shim daemon ${f.shimPid} still exists (state ${shim.state}): ${shim.argv.join(' ')}`);
    const ctr = readProc(f.containerPid);
    if (ctr) problems.push(`container process ${f.containerPid} still exists (state ${ctr.state})`);
    for (const m of mountsUnder(f.bundle)) problems.push(`mount left under the bundle: ${m.mountPoint} (${m.fsType})`);
    if (f.socket && fs.existsSync(f.socket)) problems.push(`shim socket left: ${f.socket}`);
    if (fs.existsSync(f.bundle)) problems.push(`bundle dir left: ${f.bundle} (${fs.readdirSync(f.bundle).join(' ')})`);
    return problems;
  };
  return (await waitFor(() => (check().length === 0 ? [] : undefined), timeoutMs, 100)) ?? check();
}
