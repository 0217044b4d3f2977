// Checkpoint and restore through ctr, ferry vs the Go shim, for (a) an idle container and
// (b) one whose init holds 256 MiB of touched anonymous memory:
//   ctr c checkpoint --task --rw --image ID REF   (the container keeps running)
//   kill + rm the task and container
//   ctr c restore --live --rw ID REF             (task created from the checkpoint and started)
// Each sample is a fresh container, so no run restores a restored process, and each
// checkpoint image is removed before the next (NOTES.md: stale checkpoint images of the same
// container break later checkpoints in containerd 1.7).
import * as fs from 'node:fs';
import { BenchContext, envCount, mustSucceed, procKiB, removeContainer, roundOrder, Runtime, RuntimeLabel, timedCtr } from './context';
import { ratio, summarize, Summary } from './stats';
import { sleep, waitFor } from '../test/helpers/procfs';
import { waitForStatus } from '../test/helpers/lanes';

export interface WorkloadResult {
  workload: string;
  command: string[];
  /** Resident memory of the container's init just before the checkpoint, MiB (median). */
  initRssMiB: number;
  checkpointMs: Partial<Record<RuntimeLabel, Summary>>;
  restoreMs: Partial<Record<RuntimeLabel, Summary>>;
  checkpointRatio: { median: number; mean: number };
  restoreRatio: { median: number; mean: number };
}

export interface CheckpointResult {
  n: number;
  workloads: WorkloadResult[];
  /** Why a runtime's figures are missing (e.g. checkpoint not implemented yet). */
  unavailable: Partial<Record<RuntimeLabel, string>>;
  /** Every failed cycle, with ctr's message and containerd's log tail. */
  failures: CycleFailure[];
}

export interface CycleFailure {
  runtime: RuntimeLabel;
  workload: string;
  error: string;
}

interface Workload {
  name: string;
  command: string[];
  /** Minimum init RSS (KiB) that shows the workload is in its steady state. */
  minRssKiB: number;
}

const IDLE_LOOP = 'while :; do sleep 1; done';

function workloads(quick: boolean): Workload[] {
  const mib = Number(process.env.BENCH_CKPT_MIB ?? (quick ? 64 : 256));
  return [
    // Not a bare `sleep 100000`: with either shim, busybox's sleep as the container's init ends
    // when `ctr c checkpoint` (pause, CRIU dump --leave-running, resume) interrupts it, and the
    // task is STOPPED afterwards. A shell loop of short sleeps is just as idle and survives.
    { name: 'idle (shell loop of sleep 1)', command: ['sh', '-c', IDLE_LOOP], minRssKiB: 0 },
    {
      name: `${mib} MiB touched anonymous memory`,
      // busybox sh keeps the command substitution's output in a heap string: `mib` MiB of 'a'
      // (not zeros: CRIU would still dump zero pages, but 'a' makes every page really touched).
      // The `sleep` child appears only once the string is complete.
      command: ['sh', '-c', `x=$(head -c ${mib * 1048576} /dev/zero | tr '\\0' a); ${IDLE_LOOP}`],
      minRssKiB: mib * 1024 * 0.95,
    },
  ];
}

/** The init's children (from /proc/<pid>/task/<pid>/children). */
function childComms(pid: number): string[] {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.map((k) => {
      try {
        return fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    });
  } catch {
    return [];
  }
}

let counter = 0;

async function startWorkload(ctx: BenchContext, rt: Runtime, w: Workload, id: string): Promise<number> {
  const { r } = await timedCtr(ctx, ['run', '-d', '--runtime', rt.name, ctx.image, id, ...w.command], 60000);
  mustSucceed(ctx, `ctr run -d --runtime ${rt.name}`, r);
  const row = await waitForStatus(ctx.c, id, 'RUNNING');
  if (w.minRssKiB === 0) {
    await sleep(200);
  } else {
    const ok = await waitFor(() => childComms(row.pid).includes('sleep') && (procKiB(`/proc/${row.pid}/status`, 'VmRSS') ?? 0) >= w.minRssKiB, 120000, 100);
    if (!ok) throw new Error(`workload "${w.name}" never reached its steady state (init RSS ${procKiB(`/proc/${row.pid}/status`, 'VmRSS')} KiB)`);
  }
  return (procKiB(`/proc/${row.pid}/status`, 'VmRSS') ?? 0) / 1024;
}

/** One checkpoint + restore of a fresh container; returns both times and the init's RSS. */
async function cycle(ctx: BenchContext, rt: Runtime, w: Workload): Promise<{ checkpointMs: number; restoreMs: number; rssMiB: number }> {
  const id = `bench-ckpt-${rt.label}-${process.pid}-${++counter}`;
  const ref = `bench/ckpt/${id}:v1`;
  try {
    const rssMiB = await startWorkload(ctx, rt, w, id);
    const ck = await timedCtr(ctx, ['containers', 'checkpoint', '--task', '--rw', '--image', id, ref], 300000);
    mustSucceed(ctx, `checkpoint (${rt.label}, ${w.name})`, ck.r);
    await removeContainer(ctx, id);
    const rs = await timedCtr(ctx, ['containers', 'restore', '--live', '--rw', id, ref], 300000);
    mustSucceed(ctx, `restore (${rt.label}, ${w.name})`, rs.r);
    const row = await waitForStatus(ctx.c, id, 'RUNNING');
    if (w.minRssKiB > 0) {
      const after = procKiB(`/proc/${row.pid}/status`, 'VmRSS') ?? 0;
      if (after < w.minRssKiB) throw new Error(`restored ${rt.label} container holds only ${after} KiB (expected ≥ ${w.minRssKiB})`);
    }
    return { checkpointMs: ck.ms, restoreMs: rs.ms, rssMiB };
  } finally {
    await removeContainer(ctx, id);
    await ctx.c.ctr(['images', 'rm', '--sync', ref], { timeoutMs: 60000 });
  }
}

export async function benchCheckpoint(ctx: BenchContext): Promise<CheckpointResult> {
  const n = envCount('BENCH_CKPT_N', 5, 1, ctx.quick);
  const unavailable: Partial<Record<RuntimeLabel, string>> = {};
  const failures: CycleFailure[] = [];
  const succeeded: Record<RuntimeLabel, number> = { ferry: 0, go: 0 };
  const results: WorkloadResult[] = [];
  for (const w of workloads(ctx.quick)) {
    const ck: Record<RuntimeLabel, number[]> = { ferry: [], go: [] };
    const rs: Record<RuntimeLabel, number[]> = { ferry: [], go: [] };
    const rss: number[] = [];
    for (let i = 0; i < n; i++) {
      for (const rt of roundOrder(i)) {
        if (unavailable[rt.label]) continue;
        try {
          const s = await cycle(ctx, rt, w);
          ck[rt.label].push(s.checkpointMs);
          rs[rt.label].push(s.restoreMs);
          rss.push(s.rssMiB);
          succeeded[rt.label]++;
        } catch (err) {
          // A failing cycle is recorded, not fatal: the other runtime's figures are still worth
          // having. A runtime that has never succeeded and fails twice is declared unavailable
          // (ferry's checkpoint/restore may not have landed yet) and skipped from then on.
          const message = err instanceof Error ? err.message : String(err);
          failures.push({ runtime: rt.label, workload: w.name, error: message });
          ctx.log(`${rt.label} cycle failed (${w.name}): ${message}`);
          const mine = failures.filter((f) => f.runtime === rt.label).length;
          if (succeeded[rt.label] === 0 && mine >= 2) {
            unavailable[rt.label] = `${rt.label} checkpoint not available: ${message.split('\n').slice(0, 2).join(' | ')}`;
            ctx.log(unavailable[rt.label]!);
          }
        }
      }
    }
    const summary = (x: Record<RuntimeLabel, number[]>): Partial<Record<RuntimeLabel, Summary>> => {
      const o: Partial<Record<RuntimeLabel, Summary>> = {};
      for (const l of ['ferry', 'go'] as const) if (x[l].length) o[l] = summarize(x[l]);
      return o;
    };
    const checkpointMs = summary(ck);
    const restoreMs = summary(rs);
    results.push({
      workload: w.name,
      command: w.command,
      initRssMiB: summarize(rss).median,
      checkpointMs,
      restoreMs,
      checkpointRatio: { median: ratio(checkpointMs.ferry?.median, checkpointMs.go?.median), mean: ratio(checkpointMs.ferry?.mean, checkpointMs.go?.mean) },
      restoreRatio: { median: ratio(restoreMs.ferry?.median, restoreMs.go?.median), mean: ratio(restoreMs.ferry?.mean, restoreMs.go?.mean) },
    });
    ctx.log(`checkpoint ${w.name}: ferry ${checkpointMs.ferry?.median.toFixed(0) ?? '–'} / go ${checkpointMs.go?.median.toFixed(0) ?? '–'} ms; restore ferry ${restoreMs.ferry?.median.toFixed(0) ?? '–'} / go ${restoreMs.go?.median.toFixed(0) ?? '–'} ms`);
  }
  return { n, workloads: results, unavailable, failures };
}
