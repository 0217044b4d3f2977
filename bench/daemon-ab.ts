// A/B of what one new shim daemon costs (not part of `make bench`; docs/benchmarks.md "Round 4:
// startup snapshot"): per round and runtime, in rotating order, DAB_N (default 10) containers
// `ctr run -d … sleep 1000`, each with its own daemon; for each, the daemon's CPU when ctr
// returns (all its threads' schedstat: for ferry node's start, `start`, Create and Start; for the
// Go shim its daemon only); after DAB_SETTLE_MS (3000, as the memory bench) RSS, PSS and
// anonymous memory of every daemon of that runtime (/proc/PID/smaps_rollup), summed; then the
// containers are removed. DAB_ROUNDS rounds (3). Then DAB_RESTORES (default 8) rounds of an
// idle container (`sh -c 'while :; do sleep 1; done'`) per runtime: `ctr c checkpoint --task --rw
// --image`, removal, and `ctr c restore --live --rw` (wall) with the restored container's daemon's
// CPU when it returns. Runtimes as bench/ab.ts: AB=label=runtime,…
// Bundle into build/bench/ like bench/ab.ts and run as root.
import * as fs from 'node:fs';
import { startContainerd } from '../test/helpers/containerd';
import { summarize } from './stats';

function processCpuMs(pid: number): number {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try { ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { /* thread gone */ }
  }
  return ns / 1e6;
}

function rollupKiB(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const spec = process.env.AB ?? 'ferry=io.containerd.ferry.v2,go=io.containerd.runc.v2';
  const arms = spec.split(',').map((s) => ({ label: s.slice(0, s.indexOf('=')), runtime: s.slice(s.indexOf('=') + 1) }));
  const n = Number(process.env.DAB_N ?? 10);
  const rounds = Number(process.env.DAB_ROUNDS ?? 3);
  const settle = Number(process.env.DAB_SETTLE_MS ?? 3000);
  delete process.env.NODE_EXTRA_CA_CERTS;
  const c = await startContainerd({ version: (process.env.AB_CONTAINERD ?? '1.7') as '1.7' | '2.1' });
  const res = new Map(arms.map((a) => [a.label, { cpu: [] as number[], rss: [] as number[], pss: [] as number[], anon: [] as number[], restoreMs: [] as number[], restoreCpu: [] as number[] }]));
  let k = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < arms.length; i++) {
        const a = arms[(i + round) % arms.length]!;
        const r = res.get(a.label)!;
        const ids: string[] = [];
        const pids: number[] = [];
        for (let j = 0; j < n; j++) {
          const id = `dab-${a.label}-${process.pid}-${++k}`;
          const out = await c.ctr(['run', '-d', '--runtime', a.runtime, c.image!.name, id, 'sleep', '1000']);
          if (out.code !== 0) throw new Error(`${a.label}: run -d: ${out.stderr}`);
          ids.push(id);
          const pid = c.shimDaemons(id)[0]?.pid;
          if (!pid) throw new Error(`${a.label}: no daemon for ${id}`);
          r.cpu.push(processCpuMs(pid));
          pids.push(pid);
        }
        await sleep(settle);
        const sum = { Rss: 0, Pss: 0, Anonymous: 0 };
        for (const pid of pids) {
          const m = rollupKiB(pid);
          sum.Rss += m.Rss ?? 0; sum.Pss += m.Pss ?? 0; sum.Anonymous += m.Anonymous ?? 0;
        }
        r.rss.push(sum.Rss / 1024); r.pss.push(sum.Pss / 1024); r.anon.push(sum.Anonymous / 1024);
        for (const id of ids) {
          await c.ctr(['task', 'kill', '-s', 'KILL', id]);
          for (let t = 0; t < 50 && (await c.ctr(['task', 'rm', id])).code !== 0; t++) await sleep(100);
          await c.ctr(['container', 'rm', id]);
        }
        console.error(`round ${round} ${a.label}: cpu median ${summarize(r.cpu.slice(-n)).median.toFixed(1)} ms, ${n} daemons RSS ${sum.Rss / 1024 | 0} PSS ${(sum.Pss / 1024).toFixed(1)} anon ${(sum.Anonymous / 1024).toFixed(1)} MiB`);
      }
    }
    const restores = Number(process.env.DAB_RESTORES ?? 8);
    const restoreMib = Number(process.env.DAB_RESTORE_MIB ?? 0);
    for (let round = 0; round < restores; round++) {
      for (let i = 0; i < arms.length; i++) {
        const a = arms[(i + round) % arms.length]!;
        const r = res.get(a.label)!;
        const id = `dab-ck-${a.label}-${process.pid}-${++k}`;
        const ref = `dab/ckpt/${id}:v1`;
        const must = async (args: string[]) => {
          const out = await c.ctr(args, { timeoutMs: 120000 });
          if (out.code !== 0) throw new Error(`${a.label}: ctr ${args.join(' ')}: ${out.stderr}`);
        };
        const remove = async () => {
          await c.ctr(['task', 'kill', '-s', 'KILL', id]);
          for (let t = 0; t < 50 && (await c.ctr(['task', 'rm', id])).code !== 0; t++) await sleep(100);
          await c.ctr(['container', 'rm', id]);
        };
        // DAB_RESTORE_MIB: the init holds that much touched anonymous memory (as bench/checkpoint.ts's
        // second workload), for restores whose size matters; 0 = the idle shell loop.
        const held = restoreMib > 0 ? `x=$(head -c ${restoreMib * 1048576} /dev/zero | tr '\\0' a); ` : '';
        await must(['run', '-d', '--runtime', a.runtime, c.image!.name, id, 'sh', '-c', `${held}while :; do sleep 1; done`]);
        await sleep(restoreMib > 0 ? 1000 + restoreMib * 12 : 300);
        await must(['containers', 'checkpoint', '--task', '--rw', '--image', id, ref]);
        await remove();
        const t0 = performance.now();
        await must(['containers', 'restore', '--live', '--rw', id, ref]);
        r.restoreMs.push(performance.now() - t0);
        const pid = c.shimDaemons(id)[0]?.pid;
        if (pid) r.restoreCpu.push(processCpuMs(pid));
        await remove();
        await c.ctr(['images', 'rm', '--sync', ref], { timeoutMs: 60000 });
      }
    }
  } finally {
    await c.stop();
  }
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' / ');
  console.log(`daemon CPU at ctr run -d's return (ms, N=${n * rounds}) and memory of ${n} daemons after ${settle} ms (MiB, medians of ${rounds} rounds); load at end ${load}`);
  console.log('| runtime | CPU median | CPU p90 | RSS | PSS | anonymous | PSS/daemon | anonymous/daemon |');
  console.log('|---|---|---|---|---|---|---|---|');
  const restoreRows: string[] = [];
  for (const [label, r] of res) {
    const cpu = summarize(r.cpu);
    const pss = summarize(r.pss).median; const anon = summarize(r.anon).median;
    restoreRows.push(`| ${label} | ${summarize(r.restoreMs).median.toFixed(0)} | ${summarize(r.restoreMs).p90.toFixed(0)} | ${summarize(r.restoreCpu).median.toFixed(1)} |`);
    console.log(`| ${label} | ${cpu.median.toFixed(1)} | ${cpu.p90.toFixed(1)} | ${summarize(r.rss).median.toFixed(1)} | ${pss.toFixed(1)} | ${anon.toFixed(1)} | ${(pss / n).toFixed(2)} | ${(anon / n).toFixed(2)} |`);
  }
  printRestores(restoreRows);
}

function printRestores(rows: string[]): void {
  console.log('\nrestore of an idle container: wall (ms) and the restored daemon\'s CPU (ms) when ctr returns, medians');
  console.log('| runtime | restore median | restore p90 | daemon CPU |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(row);
}

main().catch((err) => { console.error(err); process.exit(1); });
