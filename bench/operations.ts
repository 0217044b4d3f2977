// The other commands a user waits for, ferry and the Go shim interleaved, N rounds each:
//   run -d      `ctr run -d … sh -c 'while :; do sleep 1; done'` (start, Create, Start; a new daemon)
//   exec        `ctr task exec --exec-id E ID echo hi` on that running task (Exec, Start, exit, Delete)
//   rm -f       `ctr task rm -f ID` of that running task (Kill, Wait, Delete, Shutdown, and the
//               shim's `delete` action containerd 1.7 runs after every shim exit)
//   group join  `ctr run --rm` of a container labelled with the group of an already running
//               container (io.containerd.runc.v2.group): no new daemon, `start` hands over the
//               running one's address
// Each figure is wall time and the CPU containerd + shim + runc spent (cgroup, see cpu-meter.ts).
import { BenchContext, envCount, mustSucceed, removeContainer, roundOrder, RuntimeLabel, RUNTIMES, timedCtrWithCpu } from './context';
import { CPU_SETTLE_MS, ratios } from './lifecycle';
import { summarize, Summary } from './stats';

export const OPERATIONS = ['run -d', 'exec', 'rm -f', 'group join'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface OperationFigures {
  ms: Record<RuntimeLabel, Summary>;
  ratio: { median: number; p90: number; mean: number };
  cpuMs?: Record<RuntimeLabel, Summary>;
  cpuRatio?: { median: number; p90: number; mean: number };
}

export interface OperationsResult {
  n: number;
  ops: Record<Operation, OperationFigures>;
}

const LOOP = ['sh', '-c', 'while :; do sleep 1; done'];
const GROUP_LABEL = 'io.containerd.runc.v2.group';

type Samples = Record<Operation, Record<RuntimeLabel, { ms: number[]; cpu: number[] }>>;

export async function benchOperations(ctx: BenchContext): Promise<OperationsResult> {
  const n = envCount('BENCH_OPS_N', 20, 3, ctx.quick);
  const samples = Object.fromEntries(OPERATIONS.map((op) => [op, { ferry: { ms: [], cpu: [] }, go: { ms: [], cpu: [] } }])) as unknown as Samples;
  const settle = ctx.cpu ? CPU_SETTLE_MS : 0;
  const record = (op: Operation, label: RuntimeLabel, t: { ms: number; cpuMs?: number }, warm: boolean) => {
    if (warm) return;
    samples[op][label].ms.push(t.ms);
    if (t.cpuMs !== undefined) samples[op][label].cpu.push(t.cpuMs);
  };
  // One keeper per runtime holds its group's daemon for the whole run.
  const keepers: Record<RuntimeLabel, string> = { ferry: `bench-keep-ferry-${process.pid}`, go: `bench-keep-go-${process.pid}` };
  const group = (label: RuntimeLabel) => `bench-group-${label}-${process.pid}`;
  try {
    for (const rt of RUNTIMES) {
      const r = await ctx.c.ctr(['run', '-d', '--runtime', rt.name, '--label', `${GROUP_LABEL}=${group(rt.label)}`, ctx.image, keepers[rt.label], ...LOOP], { timeoutMs: 60000 });
      mustSucceed(ctx, `ctr run -d (group keeper, ${rt.label})`, r);
    }
    // Round 0 is a warm-up, not recorded.
    for (let i = 0; i <= n; i++) {
      for (const rt of roundOrder(i)) {
        const id = `bench-op-${rt.label}-${process.pid}-${i}`;
        const run = await timedCtrWithCpu(ctx, ['run', '-d', '--runtime', rt.name, ctx.image, id, ...LOOP], 60000, settle);
        mustSucceed(ctx, `ctr run -d --runtime ${rt.name}`, run.r);
        record('run -d', rt.label, run, i === 0);

        const exec = await timedCtrWithCpu(ctx, ['task', 'exec', '--exec-id', `e${i}`, id, 'echo', 'hi'], 60000, settle);
        mustSucceed(ctx, `ctr task exec (${rt.label})`, exec.r);
        if (exec.r.stdout !== 'hi\n') throw new Error(`ctr task exec (${rt.label}): expected "hi\\n", got ${JSON.stringify(exec.r.stdout)}`);
        record('exec', rt.label, exec, i === 0);

        const rm = await timedCtrWithCpu(ctx, ['task', 'rm', '-f', id], 60000, settle);
        mustSucceed(ctx, `ctr task rm -f (${rt.label})`, rm.r);
        record('rm -f', rt.label, rm, i === 0);
        mustSucceed(ctx, `ctr container rm (${rt.label})`, await ctx.c.ctr(['container', 'rm', id]));

        const join = await timedCtrWithCpu(ctx, ['run', '--rm', '--runtime', rt.name, '--label', `${GROUP_LABEL}=${group(rt.label)}`, ctx.image, `${id}-g`, 'echo', 'hi'], 60000, settle);
        mustSucceed(ctx, `ctr run --rm (group join, ${rt.label})`, join.r);
        record('group join', rt.label, join, i === 0);
      }
    }
  } finally {
    for (const rt of RUNTIMES) await removeContainer(ctx, keepers[rt.label]);
  }
  const ops = {} as Record<Operation, OperationFigures>;
  for (const op of OPERATIONS) {
    const s = samples[op];
    const ms = { ferry: summarize(s.ferry.ms), go: summarize(s.go.ms) };
    const f: OperationFigures = { ms, ratio: ratios(ms.ferry, ms.go) };
    if (s.ferry.cpu.length && s.go.cpu.length) {
      f.cpuMs = { ferry: summarize(s.ferry.cpu), go: summarize(s.go.cpu) };
      f.cpuRatio = ratios(f.cpuMs.ferry, f.cpuMs.go);
    }
    ops[op] = f;
    ctx.log(`${op}: ferry median ${ms.ferry.median.toFixed(1)} ms, go ${ms.go.median.toFixed(1)} ms${f.cpuMs ? `; CPU ${f.cpuMs.ferry.median.toFixed(1)} / ${f.cpuMs.go.median.toFixed(1)} ms` : ''}`);
  }
  return { n, ops };
}
