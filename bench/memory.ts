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
  /** Anonymous memory (heap, stacks: what the daemons allocated, not file pages). */
  anonMiB?: number;
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
  anonRatio?: number[];
  /** `counts`' largest number of containers in ONE group's daemon (io.containerd.runc.v2.group). */
  grouped?: Record<RuntimeLabel, MemorySample>;
  groupedAnonRatio?: number;
  groupedPssRatio?: number;
}

const KiB_PER_MiB = 1024;

/** Sums smaps_rollup over the shim daemons serving `ids` (a grouping shim is counted once). */
function measure(ctx: BenchContext, ids: string[]): MemorySample {
  const pids = new Set<number>();
  for (const id of ids) for (const d of ctx.c.shimDaemons(id)) pids.add(d.pid);
  let rss = 0;
  let pss = 0;
  let priv = 0;
  let anon = 0;
  for (const pid of pids) {
    const f = `/proc/${pid}/smaps_rollup`;
    anon += procKiB(f, 'Anonymous') ?? 0;
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
    anonMiB: anon / KiB_PER_MiB,
    rssPerContainerMiB: rss / KiB_PER_MiB / n,
    pssPerContainerMiB: pss / KiB_PER_MiB / n,
  };
}

/** `group` puts every container in one group's daemon (undefined: one daemon each). */
async function runtimeSeries(ctx: BenchContext, rt: Runtime, counts: number[], settleMs: number, group?: string): Promise<MemorySample[]> {
  const ids: string[] = [];
  const out: MemorySample[] = [];
  try {
    for (const target of counts) {
      while (ids.length < target) {
        const id = `bench-mem-${rt.label}-${group ? 'g-' : ''}${process.pid}-${ids.length}`;
        ids.push(id);
        const labels = group ? ['--label', `io.containerd.runc.v2.group=${group}`] : [];
        const { r } = await timedCtr(ctx, ['run', '-d', '--runtime', rt.name, ...labels, ctx.image, id, 'sleep', '1000'], 60000);
        mustSucceed(ctx, `ctr run -d --runtime ${rt.name} sleep`, r);
      }
      // Every container must have its shim before measuring (ferry's daemon may take a moment to
      // settle). A group's daemon carries the -id of the container that started it, the first.
      const daemonIds = group ? ids.slice(0, 1) : ids;
      const ready = await waitFor(() => daemonIds.every((id) => ctx.c.shimDaemons(id).length > 0), 15000, 100);
      if (!ready) throw new Error(`memory: not every ${rt.label} container has a shim daemon`);
      await sleep(settleMs);
      const s = { ...measure(ctx, daemonIds), containers: ids.length };
      s.rssPerContainerMiB = s.rssMiB / ids.length;
      s.pssPerContainerMiB = s.pssMiB / ids.length;
      out.push(s);
      ctx.log(`memory ${rt.label} ×${target}${group ? ' (one group)' : ''}: ${s.daemons} daemons, RSS ${s.rssMiB.toFixed(1)} MiB, PSS ${s.pssMiB.toFixed(1)} MiB, anonymous ${s.anonMiB?.toFixed(1)} MiB`);
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
  const grouped = {} as Record<RuntimeLabel, MemorySample>;
  for (const rt of RUNTIMES) grouped[rt.label] = (await runtimeSeries(ctx, rt, [max], settleMs, `bench-mem-${rt.label}-${process.pid}`))[0]!;
  return {
    counts,
    settleMs,
    byRuntime,
    pssRatio: counts.map((_, i) => ratio(byRuntime.ferry[i]?.pssMiB, byRuntime.go[i]?.pssMiB)),
    rssRatio: counts.map((_, i) => ratio(byRuntime.ferry[i]?.rssMiB, byRuntime.go[i]?.rssMiB)),
    anonRatio: counts.map((_, i) => ratio(byRuntime.ferry[i]?.anonMiB, byRuntime.go[i]?.anonMiB)),
    grouped,
    groupedAnonRatio: ratio(grouped.ferry.anonMiB, grouped.go.anonMiB),
    groupedPssRatio: ratio(grouped.ferry.pssMiB, grouped.go.pssMiB),
  };
}
