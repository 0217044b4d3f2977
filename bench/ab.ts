// A/B of shim builds (not part of `make bench`): how one change moved the container lifecycle,
// against a copy of the build before it and the Go shim, interleaved in one private containerd.
// Run as `make bench-ab AB=label=runtime,…` where a runtime is a name (io.containerd.runc.v2)
// or the absolute path of a shim launcher (containerd 1.7 and 2.x run a path as the shim),
// e.g. a copy of shim/ and dist/ made before the change. Per round and runtime, in rotating
// order: `ctr run --rm … echo hi`, then `ctr run -d` of a shell loop, AB_EXECS (default 3)
// `ctr task exec … echo hi` on it, `ctr run --rm … echo hi` of a container that joins its
// group's daemon, and `ctr task rm -f` of the loop; AB_EXEC_AFTER_MS (default 0) waits that long
// before the execs, to time them on a daemon whose memory has settled (src/daemon/memory-settler.ts).
// Prints medians of wall time and of the CPU of containerd + shims + runc (cgroup), which a loaded
// machine barely moves; for exec also the CPU of the shim daemon alone (its threads' schedstat,
// ns: runc's and containerd's CPU left out).
import * as fs from 'node:fs';
import { startContainerd } from '../test/helpers/containerd';
import { createCpuMeter } from './cpu-meter';
import { mustSucceed, timedCtrWithCpu, type BenchContext } from './context';
import { CPU_SETTLE_MS } from './lifecycle';
import { summarize } from './stats';

interface Arm { label: string; runtime: string }

function arms(): Arm[] {
  const spec = process.env.AB ?? 'ferry=io.containerd.ferry.v2,go=io.containerd.runc.v2';
  return spec.split(',').map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`AB: expected label=runtime, got ${JSON.stringify(s)}`);
    return { label: s.slice(0, eq), runtime: s.slice(eq + 1) };
  });
}

/** CPU time (ms) the threads of process `pid` have run so far (/proc/<pid>/task/<tid>/schedstat, ns). */
function processCpuMs(pid: number): number {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try { ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { /* thread gone */ }
  }
  return ns / 1e6;
}

async function main(): Promise<void> {
  const n = Number(process.env.AB_N ?? 10);
  const execs = Number(process.env.AB_EXECS ?? 3);
  const execAfterMs = Number(process.env.AB_EXEC_AFTER_MS ?? 0);
  const list = arms();
  // As under systemd: no NODE_EXTRA_CA_CERTS for containerd (the ferry launcher drops it anyway).
  delete process.env.NODE_EXTRA_CA_CERTS;
  const c = await startContainerd({ version: (process.env.AB_CONTAINERD ?? '1.7') as '1.7' | '2.1' });
  const cpu = c.pid ? createCpuMeter(c.pid, `ferry-bench-ab-${process.pid}`) : undefined;
  const ctx: BenchContext = { c, image: c.image!.name, quick: false, cpu, log: (m) => console.error(m) };
  type Series = { wall: number[]; cpu: number[]; daemon: number[] };
  const OPS = ['run --rm', 'run -d', 'exec', 'group join', 'rm -f'] as const;
  type Op = typeof OPS[number];
  const results = new Map<string, Record<Op, Series>>();
  for (const a of list) results.set(a.label, Object.fromEntries(OPS.map((op) => [op, { wall: [], cpu: [], daemon: [] }])) as unknown as Record<Op, Series>);
  let k = 0;
  try {
    for (let round = -1; round < n; round++) {
      const order = list.map((_, i) => list[(i + Math.max(round, 0)) % list.length]);
      for (const a of order) {
        const rec = results.get(a.label)!;
        const add = (op: Op, ms: number, cpuMs?: number, daemonMs?: number) => {
          if (round < 0) return; // warm-up
          rec[op].wall.push(ms);
          if (cpuMs !== undefined) rec[op].cpu.push(cpuMs);
          if (daemonMs !== undefined) rec[op].daemon.push(daemonMs);
        };
        const id = `ab-${a.label}-${process.pid}-${++k}`;
        const r1 = await timedCtrWithCpu(ctx, ['run', '--rm', '--runtime', a.runtime, ctx.image, id, 'echo', 'hi'], 60000, CPU_SETTLE_MS);
        mustSucceed(ctx, `${a.label}: run --rm`, r1.r);
        add('run --rm', r1.ms, r1.cpuMs);
        const d = `${id}-d`;
        const group = ['--label', `io.containerd.runc.v2.group=${d}`];
        const r2 = await timedCtrWithCpu(ctx, ['run', '-d', '--runtime', a.runtime, ...group, ctx.image, d, 'sh', '-c', 'while :; do sleep 1; done'], 60000, CPU_SETTLE_MS);
        mustSucceed(ctx, `${a.label}: run -d`, r2.r);
        add('run -d', r2.ms, r2.cpuMs);
        const daemon = c.shimDaemons(d)[0]?.pid;
        if (execAfterMs > 0) await new Promise((r) => setTimeout(r, execAfterMs));
        for (let e = 0; e < execs; e++) {
          const before = daemon ? processCpuMs(daemon) : undefined;
          const rx = await timedCtrWithCpu(ctx, ['task', 'exec', '--exec-id', `e${e}`, d, 'echo', 'hi'], 60000, CPU_SETTLE_MS);
          mustSucceed(ctx, `${a.label}: task exec`, rx.r);
          if (rx.r.stdout !== 'hi\n') throw new Error(`${a.label}: task exec: expected "hi\\n", got ${JSON.stringify(rx.r.stdout)}`);
          add('exec', rx.ms, rx.cpuMs, daemon && before !== undefined ? processCpuMs(daemon) - before : undefined);
        }
        const rj = await timedCtrWithCpu(ctx, ['run', '--rm', '--runtime', a.runtime, ...group, ctx.image, `${d}-j`, 'echo', 'hi'], 60000, CPU_SETTLE_MS);
        mustSucceed(ctx, `${a.label}: group join`, rj.r);
        add('group join', rj.ms, rj.cpuMs);
        const r3 = await timedCtrWithCpu(ctx, ['task', 'rm', '-f', d], 60000, CPU_SETTLE_MS);
        mustSucceed(ctx, `${a.label}: task rm -f`, r3.r);
        add('rm -f', r3.ms, r3.cpuMs);
        mustSucceed(ctx, `${a.label}: container rm`, (await c.ctr(['container', 'rm', d])));
      }
    }
  } finally {
    await c.stop();
    cpu?.remove();
  }
  const load = (await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ');
  console.log(`N=${n} per arm (exec: ${n * execs}), containerd ${process.env.AB_CONTAINERD ?? '1.7'}, load ${load}; medians, ms (wall / CPU of containerd+shim+runc; exec also the shim daemon's own CPU, median and mean)`);
  console.log(['arm', ...OPS.flatMap((op) => [`${op} wall`, 'cpu']), 'exec daemon', 'mean'].join('\t'));
  for (const a of list) {
    const r = results.get(a.label)!;
    const cells = OPS.flatMap((op) => [summarize(r[op].wall).median.toFixed(1), r[op].cpu.length ? summarize(r[op].cpu).median.toFixed(1) : '-']);
    const daemon = r.exec.daemon.length ? summarize(r.exec.daemon) : undefined;
    console.log([a.label, ...cells, daemon ? daemon.median.toFixed(2) : '-', daemon ? daemon.mean.toFixed(2) : '-'].join('\t'));
  }
  // Every sample, in run order (exec: AB_EXECS per round), for a closer look.
  if (process.env.AB_JSON) fs.writeFileSync(process.env.AB_JSON, JSON.stringify(Object.fromEntries(results), null, 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
