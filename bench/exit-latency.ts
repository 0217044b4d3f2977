// How soon a process's death reaches containerd as /tasks/exit. Per runtime one container
// (`sleep 100000`); per sample an exec'd `sleep 1000` (`ctr task exec -d`), found by its pid in
// `ctr task ps`, is SIGKILLed by this process, and the time until `ctr events` prints its
// /tasks/exit is taken (the exec's reaping and publishing is the same path as an init's: the
// shim's reaper, then the event). Both runtimes pay the same containerd → `ctr events` → pipe
// leg, so the ratio isolates the shims; the absolute figure is an upper bound of the shim's part.
// Also recorded: exited_at (the shim's own timestamp of the exit) minus the kill time.
import type { CtrEvent } from '../test/helpers/containerd';
import { BenchContext, envCount, mustSucceed, removeContainer, roundOrder, RuntimeLabel, RUNTIMES } from './context';
import { ratio, summarize, Summary } from './stats';

export interface ExitLatencyResult {
  n: number;
  /** kill(2) → /tasks/exit printed by `ctr events`, ms. */
  eventMs: Record<RuntimeLabel, Summary & { p99: number }>;
  /** kill(2) → the event's exited_at (the shim's clock), ms. */
  exitedAtMs: Record<RuntimeLabel, Summary & { p99: number }>;
  p99Ratio: number;
}

/** Wall clock in ms with sub-ms resolution (the same clock exited_at is taken from). */
const nowMs = () => performance.timeOrigin + performance.now();

function withP99(samples: number[]): Summary & { p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const p99 = sorted.length ? sorted[Math.min(sorted.length, Math.ceil(0.99 * sorted.length)) - 1]! : NaN;
  return { ...summarize(samples), p99 };
}

async function pids(ctx: BenchContext, id: string): Promise<Set<number>> {
  const r = await ctx.c.ctr(['task', 'ps', id]);
  mustSucceed(ctx, `ctr task ps ${id}`, r);
  return new Set(r.stdout.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((p) => p > 0));
}

/** exited_at as printed by ctr ({seconds, nanos}, or RFC 3339 with ns) in ms since the epoch, or NaN. */
function exitedAtMs(e: CtrEvent): number {
  const s = e.event.exited_at;
  if (s && typeof s === 'object') {
    const t = s as { seconds?: number | string; nanos?: number };
    return Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;
  }
  if (typeof s !== 'string') return NaN;
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return NaN;
  return Date.parse(`${m[1]}${m[3]}`) + Number(`0.${m[2] ?? '0'}`) * 1000;
}

export async function benchExitLatency(ctx: BenchContext): Promise<ExitLatencyResult> {
  const n = envCount('BENCH_EXIT_N', 100, 10, ctx.quick);
  const ids: Record<RuntimeLabel, string> = { ferry: `bench-exit-ferry-${process.pid}`, go: `bench-exit-go-${process.pid}` };
  const event: Record<RuntimeLabel, number[]> = { ferry: [], go: [] };
  const exited: Record<RuntimeLabel, number[]> = { ferry: [], go: [] };
  const events = await ctx.c.events();
  try {
    for (const rt of RUNTIMES) {
      mustSucceed(ctx, `ctr run -d (${rt.label})`, await ctx.c.ctr(['run', '-d', '--runtime', rt.name, ctx.image, ids[rt.label], 'sleep', '100000'], { timeoutMs: 60000 }));
    }
    for (let i = 0; i < n; i++) {
      for (const rt of roundOrder(i)) {
        const id = ids[rt.label];
        const execId = `x${i}`;
        const before = await pids(ctx, id);
        mustSucceed(ctx, `ctr task exec -d (${rt.label})`, await ctx.c.ctr(['task', 'exec', '-d', '--exec-id', execId, id, 'sleep', '1000']));
        const fresh = [...(await pids(ctx, id))].filter((p) => !before.has(p));
        if (fresh.length !== 1) throw new Error(`exit latency (${rt.label}): expected one new process in ${id}, found ${fresh.length}`);
        const seen = events.waitFor((e) => e.topic === '/tasks/exit' && e.event.container_id === id && e.event.id === execId, 15000);
        const t0 = nowMs();
        process.kill(fresh[0]!, 'SIGKILL');
        const e = await seen;
        event[rt.label].push(nowMs() - t0);
        const at = exitedAtMs(e);
        if (Number.isFinite(at)) exited[rt.label].push(at - t0);
      }
    }
  } finally {
    await events.stop();
    for (const rt of RUNTIMES) await removeContainer(ctx, ids[rt.label]);
  }
  const eventMs = { ferry: withP99(event.ferry), go: withP99(event.go) };
  const exitedAt = { ferry: withP99(exited.ferry), go: withP99(exited.go) };
  ctx.log(`exit → /tasks/exit: ferry p50 ${eventMs.ferry.median.toFixed(1)} p99 ${eventMs.ferry.p99.toFixed(1)} ms; go p50 ${eventMs.go.median.toFixed(1)} p99 ${eventMs.go.p99.toFixed(1)} ms`);
  return { n, eventMs, exitedAtMs: exitedAt, p99Ratio: ratio(eventMs.ferry.p99, eventMs.go.p99) };
}
