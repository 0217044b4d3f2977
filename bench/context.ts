// What every benchmark gets: the one private containerd both runtimes run against, the runtimes
// compared, and a few timing helpers around `ctr`.
import * as fs from 'node:fs';
import type { Containerd, CtrResult } from '../test/helpers/containerd';
import type { CpuMeter } from './cpu-meter';
import { msSince } from './stats';

export type RuntimeLabel = 'ferry' | 'go';

export interface Runtime {
  label: RuntimeLabel;
  /** containerd runtime name passed to `ctr --runtime`. */
  name: string;
}

export const RUNTIMES: Runtime[] = [
  { label: 'ferry', name: 'io.containerd.ferry.v2' },
  { label: 'go', name: 'io.containerd.runc.v2' },
];

export interface BenchContext {
  c: Containerd;
  image: string;
  quick: boolean;
  /** CPU time of containerd and its children (undefined where no cgroup could be made). */
  cpu?: CpuMeter;
  log(msg: string): void;
}

/** An env override for a count (BENCH_N=20), falling back to the quick or full default. */
export function envCount(name: string, full: number, quick: number, isQuick: boolean): number {
  const v = process.env[name];
  if (v !== undefined && /^\d+$/.test(v) && Number(v) > 0) return Number(v);
  return isQuick ? quick : full;
}

/** Runs ctr and returns its wall-clock time (spawn to close) with its result. */
export async function timedCtr(ctx: BenchContext, args: string[], timeoutMs = 120000): Promise<{ ms: number; r: CtrResult }> {
  const t0 = process.hrtime.bigint();
  const r = await ctx.c.ctr(args, { timeoutMs });
  return { ms: msSince(t0), r };
}

/** Throws with ctr's output and containerd's log tail unless ctr exited 0. */
export function mustSucceed(ctx: BenchContext, what: string, r: CtrResult): void {
  if (r.code === 0) return;
  throw new Error(`${what}: ctr exited ${r.code ?? r.signal}\n${r.stderr.trim()}${r.stdout.trim() ? `\n${r.stdout.trim()}` : ''}\n--- containerd log ---\n${ctx.c.logTail(15)}`);
}

/** Kills (SIGKILL) and removes a task and its container, ignoring what is already gone. */
export async function removeContainer(ctx: BenchContext, id: string): Promise<void> {
  await ctx.c.ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], { timeoutMs: 15000 });
  // `tasks rm --force` kills again and waits for the exit before deleting.
  await ctx.c.ctr(['tasks', 'rm', '--force', id], { timeoutMs: 30000 });
  await ctx.c.ctr(['containers', 'rm', id], { timeoutMs: 15000 });
}

/** Orders the runtimes for round i, alternating which goes first so neither always runs on a warmer cache. */
export function roundOrder(i: number): Runtime[] {
  return i % 2 === 0 ? RUNTIMES : [...RUNTIMES].reverse();
}

/** One `key: N kB` field of a /proc smaps_rollup or status file, in KiB (undefined if missing). */
export function procKiB(file: string, key: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Resolves after `ms`. */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Wall time of one ctr command, and the CPU containerd and its children spent on it: read
 * `settleMs` after ctr returned, so a shim daemon's exit (which follows its last answer) counts.
 */
export async function timedCtrWithCpu(ctx: BenchContext, args: string[], timeoutMs = 120000, settleMs = 0): Promise<{ ms: number; cpuMs?: number; r: CtrResult }> {
  const c0 = ctx.cpu?.usedMs();
  const { ms, r } = await timedCtr(ctx, args, timeoutMs);
  if (settleMs) await pause(settleMs);
  const c1 = ctx.cpu?.usedMs();
  return { ms, r, cpuMs: c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined };
}
