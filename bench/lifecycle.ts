// `ctr run --rm --runtime R IMAGE id echo hi`: the whole life of a container as a user sees it
// (shim start, create, start, exit, delete, shim exit), ferry and the Go shim interleaved.
//
// The shim's `start` invocation alone (containerd's critical path: it waits for that process
// to exit) is timed by a second pass through wrapper runtimes: `containerd-shim-<x>timed-v2`
// scripts on containerd's PATH that run the real shim binary and log how long `start` took.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BenchContext, envCount, mustSucceed, RuntimeLabel, roundOrder, timedCtrWithCpu, Runtime } from './context';
import { ratio, summarize, Summary } from './stats';

export interface LifecycleResult {
  n: number;
  command: string;
  runMs: Record<RuntimeLabel, Summary>;
  runRatio: { median: number; p90: number; mean: number };
  /** CPU of containerd + shim + runc per run (cgroup; the container's own CPU is not in it). */
  runCpuMs?: Record<RuntimeLabel, Summary>;
  runCpuRatio?: { median: number; p90: number; mean: number };
  /** `start` alone, measured inside a wrapper (undefined when the pass was skipped). */
  startMs?: Record<RuntimeLabel, Summary>;
  startRatio?: { median: number; p90: number; mean: number };
}

let runCounter = 0;

/** Settle time before reading the CPU counter: the daemon exits just after its last answer. */
export const CPU_SETTLE_MS = 200;

async function runEcho(ctx: BenchContext, runtime: string, label: string, cpu: number[] = []): Promise<number> {
  const id = `bench-echo-${label}-${process.pid}-${++runCounter}`;
  const { ms, r, cpuMs } = await timedCtrWithCpu(ctx, ['run', '--rm', '--runtime', runtime, ctx.image, id, 'echo', 'hi'], 60000, ctx.cpu ? CPU_SETTLE_MS : 0);
  mustSucceed(ctx, `ctr run --runtime ${runtime} echo hi`, r);
  if (r.stdout !== 'hi\n') throw new Error(`ctr run --runtime ${runtime}: expected "hi\\n", got ${JSON.stringify(r.stdout)}`);
  if (cpuMs !== undefined) cpu.push(cpuMs);
  return ms;
}

export function ratios(a: Summary, b: Summary): { median: number; p90: number; mean: number } {
  return { median: ratio(a.median, b.median), p90: ratio(a.p90, b.p90), mean: ratio(a.mean, b.mean) };
}

/**
 * Directory of wrapper shims, one per runtime: `io.containerd.<label>timed.v2` resolves to
 * `containerd-shim-<label>timed-v2`, which runs the real binary (so the Go shim's
 * os.Executable() — the binary it re-executes as its daemon — is still the real one) and
 * appends start's duration in ns to `<dir>/<label>.start.log`.
 */
export function createTimedShims(shimBinaries: Record<RuntimeLabel, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-shims-'));
  for (const [label, real] of Object.entries(shimBinaries)) {
    const logFile = path.join(dir, `${label}.start.log`);
    const script = [
      '#!/bin/sh',
      `real=${JSON.stringify(real)}`,
      // The action is the last argument; anything but start runs the real shim untouched.
      'for last; do :; done',
      '[ "$last" = start ] || exec "$real" "$@"',
      't0=$(date +%s%N)',
      '"$real" "$@"',
      'rc=$?',
      't1=$(date +%s%N)',
      `echo $((t1 - t0)) >> ${JSON.stringify(logFile)}`,
      'exit $rc',
      '',
    ].join('\n');
    fs.writeFileSync(path.join(dir, `containerd-shim-${label}timed-v2`), script, { mode: 0o755 });
  }
  return dir;
}

export function timedRuntimeName(label: RuntimeLabel): string {
  return `io.containerd.${label}timed.v2`;
}

function readStartLog(dir: string, label: RuntimeLabel): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, `${label}.start.log`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((ns) => Number(ns) / 1e6);
  } catch {
    return [];
  }
}

export async function benchLifecycle(ctx: BenchContext, timedShimDir: string | undefined): Promise<LifecycleResult> {
  const n = envCount('BENCH_N', 20, 3, ctx.quick);
  const samples: Record<RuntimeLabel, number[]> = { ferry: [], go: [] };
  const cpu: Record<RuntimeLabel, number[]> = { ferry: [], go: [] };
  // One unrecorded run each: the first start pays for cold caches (binaries, image snapshot).
  for (const rt of roundOrder(0)) await runEcho(ctx, rt.name, rt.label);
  for (let i = 0; i < n; i++) {
    for (const rt of roundOrder(i)) samples[rt.label].push(await runEcho(ctx, rt.name, rt.label, cpu[rt.label]));
  }
  const runMs = { ferry: summarize(samples.ferry), go: summarize(samples.go) };
  const result: LifecycleResult = {
    n,
    command: 'ctr run --rm --runtime R IMAGE ID echo hi',
    runMs,
    runRatio: ratios(runMs.ferry, runMs.go),
  };
  if (cpu.ferry.length && cpu.go.length) {
    result.runCpuMs = { ferry: summarize(cpu.ferry), go: summarize(cpu.go) };
    result.runCpuRatio = ratios(result.runCpuMs.ferry, result.runCpuMs.go);
  }
  ctx.log(`lifecycle: ferry median ${runMs.ferry.median.toFixed(1)} ms, go ${runMs.go.median.toFixed(1)} ms`);

  if (timedShimDir) {
    const timed: Runtime[] = [
      { label: 'ferry', name: timedRuntimeName('ferry') },
      { label: 'go', name: timedRuntimeName('go') },
    ];
    for (const rt of timed) await runEcho(ctx, rt.name, `${rt.label}timed`);
    for (const label of ['ferry', 'go'] as const) fs.rmSync(path.join(timedShimDir, `${label}.start.log`), { force: true });
    for (let i = 0; i < n; i++) {
      const order = i % 2 === 0 ? timed : [...timed].reverse();
      for (const rt of order) await runEcho(ctx, rt.name, `${rt.label}timed`);
    }
    const startMs = { ferry: summarize(readStartLog(timedShimDir, 'ferry')), go: summarize(readStartLog(timedShimDir, 'go')) };
    if (startMs.ferry.n > 0 && startMs.go.n > 0) {
      result.startMs = startMs;
      result.startRatio = ratios(startMs.ferry, startMs.go);
      ctx.log(`shim start: ferry median ${startMs.ferry.median.toFixed(1)} ms, go ${startMs.go.median.toFixed(1)} ms`);
    }
  }
  return result;
}
