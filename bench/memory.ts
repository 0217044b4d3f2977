// Shim memory with 1, 10 and 50 running containers (`ctr run -d … sleep 1000`), per runtime:
// RSS and PSS from /proc/<shim>/smaps_rollup summed over every shim daemon of that runtime.
// RSS counts the shared pages of the node (or Go) binary once per daemon; PSS splits them
// among the daemons sharing them, so PSS is the fair "what does this cost the machine" sum.
// Each runtime runs alone (the other's containers are gone) so PSS is not shared across them.
import { BenchContext, envCount, mustSucceed, procKiB, removeContainer, Runtime, RuntimeLabel, RUNTIMES, timedCtr } from './context';
import { ratio } from './stats';
import { sleep, waitFor } from '../test/helpers/procfs';

export interface MemorySample {
  containers: number;
  daemons: number;
  rssMiB: number;
  pssMiB: number;
  /** Private_Clean + Private_Dirty: what the daemons do not share with anyone. */
  privateMiB: number;
  rssPerContainerMiB: number;
  pssPerContainerMiB: number;
}

export interface MemoryResult {
  counts: number[];
  settleMs: number;
  byRuntime: Record<RuntimeLabel, MemorySample[]>;
  /** ferry/go PSS ratio per container count. */
  pssRatio: number[];
  rssRatio: number[];
}

const KiB_PER_MiB = 1024;

/** Sums smaps_rollup over the shim daemons serving `ids` (a grouping shim is counted once). */
function measure(ctx: BenchContext, ids: string[]): MemorySample {
  const pids = new Set<number>();
  for (const id of ids) for (const d of ctx.c.shimDaemons(id)) pids.add(d.pid);
  let rss = 0;
  let pss = 0;
  let priv = 0;
  for (const pid of pids) {
    const f = `/proc/${pid}/smaps_rollup`;
    rss += procKiB(f, 'Rss') ?? 0;
    pss += procKiB(f, 'Pss') ?? 0;
    priv += (procKiB(f, 'Private_Clean') ?? 0) + (procKiB(f, 'Private_Dirty') ?? 0);
  }
  const n = ids.length;
  return {
    containers: n,
    daemons: pids.size,
    rssMiB: rss / KiB_PER_MiB,
    pssMiB: pss / KiB_PER_MiB,
    privateMiB: priv / KiB_PER_MiB,
    rssPerContainerMiB: rss / KiB_PER_MiB / n,
    pssPerContainerMiB: pss / KiB_PER_MiB / n,
  };
}

async function runtimeSeries(ctx: BenchContext, rt: Runtime, counts: number[], settleMs: number): Promise<MemorySample[]> {
  const ids: string[] = [];
  const out: MemorySample[] = [];
  try {
    for (const target of counts) {
      while (ids.length < target) {
        const id = `bench-mem-${rt.label}-${process.pid}-${ids.length}`;
        ids.push(id);
        const { r } = await timedCtr(ctx, ['run', '-d', '--runtime', rt.name, ctx.image, id, 'sleep', '1000'], 60000);
        mustSucceed(ctx, `ctr run -d --runtime ${rt.name} sleep`, r);
      }
      // Every container must have its shim before measuring (ferry's daemon may take a moment to settle).
      const ready = await waitFor(() => ids.every((id) => ctx.c.shimDaemons(id).length > 0), 15000, 100);
      if (!ready) throw new Error(`memory: not every ${rt.label} container has a shim daemon`);
      await sleep(settleMs);
      const s = measure(ctx, ids);
      out.push(s);
      ctx.log(`memory ${rt.label} ×${target}: ${s.daemons} daemons, RSS ${s.rssMiB.toFixed(1)} MiB, PSS ${s.pssMiB.toFixed(1)} MiB`);
    }
  } finally {
    // Ten at a time: removing 50 one by one would take longer than the measurement.
    for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map((id) => removeContainer(ctx, id)));
  }
  return out;
}

export async function benchMemory(ctx: BenchContext): Promise<MemoryResult> {
  const max = envCount('BENCH_MEM_MAX', 50, 5, ctx.quick);
  const counts = [1, 10, 50].filter((n) => n < max).concat([max]).filter((n, i, a) => a.indexOf(n) === i);
  const settleMs = ctx.quick ? 1000 : 3000;
  const byRuntime = {} as Record<RuntimeLabel, MemorySample[]>;
  for (const rt of RUNTIMES) byRuntime[rt.label] = await runtimeSeries(ctx, rt, counts, settleMs);
  return {
    counts,
    settleMs,
    byRuntime,
    pssRatio: counts.map((_, i) => ratio(byRuntime.ferry[i]?.pssMiB, byRuntime.go[i]?.pssMiB)),
    rssRatio: counts.map((_, i) => ratio(byRuntime.ferry[i]?.rssMiB, byRuntime.go[i]?.rssMiB)),
  };
}
