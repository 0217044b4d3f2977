// `make bench-inspect` (and part of `make bench`): `ferry inspect --all` against checkpointctl
// 1.3.0's `inspect --all` of the same checkpoint archive, side by side in one run. The archive
// is a real checkpoint of a container whose init holds BENCH_INSPECT_MIB (256) MiB of touched
// anonymous memory, made through a private containerd 1.7 by ferry's shim (`ctr c
// checkpoint --task`) and laid out as a Kubernetes checkpoint archive (test/helpers/
// checkpoint-archive.ts): once as an uncompressed tar (what containerd's CRI writes) and once
// zstd-compressed (Podman's default). Each command runs as a whole process under /usr/bin/time
// (wall, user, system, peak RSS), output to /dev/null, BENCH_INSPECT_N times each after one
// unrecorded warm-up, interleaved and alternating which goes first. Prints medians and the
// ratios ferry/checkpointctl (goal: ≤ 1.0) and records them with the machine and its load in
// docs/benchmarks.md, between `<!-- bench:inspect:begin -->` and `<!-- bench:inspect:end -->`.
//
// Environment: BENCH_INSPECT_N (7), BENCH_INSPECT_MIB (256), BENCH_RECORD (1: write the docs),
// BENCH_INSPECT_KEEP=DIR (keep the archives there, to profile with `node --cpu-prof`).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, startContainerd, type Containerd } from '../test/helpers/containerd';
import { assembleArchive } from '../test/helpers/checkpoint-archive';
import { waitForStatus } from '../test/helpers/lanes';
import { waitFor } from '../test/helpers/procfs';
import { machineInfo, type MachineInfo } from './machine';
import { replaceDocSection } from './report';
import { fmt, fmtRatio, ratio, summarize, type Summary } from './stats';

interface Sample { wallS: number; userS: number; sysS: number; maxRssKiB: number }

interface ToolFigures { wallS: Summary; cpuS: Summary; maxRssMiB: Summary }

export interface InspectFormatResult {
  format: string;
  archiveMiB: number;
  ferry: ToolFigures;
  checkpointctl: ToolFigures;
  wallRatio: number;
  cpuRatio: number;
}

export interface InspectBenchResult {
  n: number;
  mib: number;
  initRssMiB: number;
  formats: InspectFormatResult[];
  loadBefore: number[];
  loadAfter: number[];
  nodeExtraCaCerts: boolean;
  machine: MachineInfo;
}

const FERRY = path.join(REPO_ROOT, 'shim', 'ferry');
// ferry's shim leaves CRIU's stats-dump among the images (the Go shim leaves it in its work dir, and
// checkpointctl's --all fails without one); the archive is otherwise the same whoever made it.
const PRODUCER = 'io.containerd.ferry.v2';

function count(name: string, dflt: number): number {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : dflt;
}

/** One run of `cmd args` under /usr/bin/time; stdout to /dev/null; fails unless it exits 0. */
function timed(cmd: string, args: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '@@time %e %U %S %M', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    child.once('error', reject);
    child.once('close', (code) => {
      const m = /@@time (\S+) (\S+) (\S+) (\d+)/.exec(err);
      if (code !== 0 || !m) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim().slice(0, 2000)}`));
      resolve({ wallS: Number(m[1]), userS: Number(m[2]), sysS: Number(m[3]), maxRssKiB: Number(m[4]) });
    });
  });
}

function vmRssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** A container holding `mib` MiB, checkpointed (it keeps running, then is removed); the archives of it. */
async function makeArchives(c: Containerd, mib: number, dir: string): Promise<{ files: { format: string; file: string; stats: boolean }[]; initRssMiB: number }> {
  const id = `bench-inspect-${process.pid}`;
  const ref = `bench/inspect/${id}:v1`;
  const created = new Date().toISOString();
  // As bench/checkpoint.ts: busybox sh keeps the substitution's output ('a' × mib MiB) in its heap.
  const script = `x=$(head -c ${mib * 1048576} /dev/zero | tr '\\0' a); while :; do sleep 1; done`;
  const r = await c.ctr(['run', '-d', '--runtime', PRODUCER, c.image!.name, id, 'sh', '-c', script], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(`ctr run: ${r.stderr}`);
  try {
    const row = await waitForStatus(c, id, 'RUNNING');
    const full = await waitFor(() => vmRssKiB(row.pid) >= mib * 1024 * 0.95 || undefined, 180000, 200);
    if (!full) throw new Error(`the container never held ${mib} MiB (RSS ${vmRssKiB(row.pid)} KiB)`);
    const initRssMiB = vmRssKiB(row.pid) / 1024;
    const ck = await c.ctr(['containers', 'checkpoint', '--task', id, ref], { timeoutMs: 300000 });
    if (ck.code !== 0) throw new Error(`ctr c checkpoint: ${ck.stderr}`);
    const files: { format: string; file: string; stats: boolean }[] = [];
    for (const compress of [undefined, 'zstd'] as const) {
      const a = await assembleArchive(c, { id, ref, name: `${id}${compress ? '-zstd' : ''}`, runtime: PRODUCER, dir, compress, createdTime: created, checkpointedTime: new Date().toISOString() });
      files.push({ format: compress ? 'tar+zstd' : 'tar', file: a.file, stats: a.stats });
    }
    return { files, initRssMiB };
  } finally {
    await c.ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], { timeoutMs: 15000 });
    await c.ctr(['tasks', 'rm', '--force', id], { timeoutMs: 30000 });
    await c.ctr(['containers', 'rm', id], { timeoutMs: 15000 });
    await c.ctr(['images', 'rm', '--sync', ref], { timeoutMs: 60000 });
  }
}

function figures(samples: Sample[]): ToolFigures {
  return {
    wallS: summarize(samples.map((s) => s.wallS)),
    cpuS: summarize(samples.map((s) => s.userS + s.sysS)),
    maxRssMiB: summarize(samples.map((s) => s.maxRssKiB / 1024)),
  };
}

export async function benchInspect(log: (m: string) => void): Promise<InspectBenchResult> {
  const n = count('BENCH_INSPECT_N', 7);
  const mib = count('BENCH_INSPECT_MIB', 256);
  const keep = process.env.BENCH_INSPECT_KEEP;
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-inspect-'));
  if (keep) fs.mkdirSync(keep, { recursive: true });
  const c = await startContainerd({ version: '1.7' });
  let made: Awaited<ReturnType<typeof makeArchives>>;
  let machine: MachineInfo;
  try {
    machine = machineInfo(c, process.env.NODE_EXTRA_CA_CERTS !== undefined);
    log(`checkpointing a container holding ${mib} MiB`);
    made = await makeArchives(c, mib, dir);
  } finally {
    await c.stop();
  }
  try {
    const loadBefore = os.loadavg().map((x) => Math.round(x * 100) / 100);
    const formats: InspectFormatResult[] = [];
    for (const { format, file, stats } of made.files) {
      // checkpointctl's --all fails without a stats-dump at the archive's top (a checkpoint
      // through containerd's Tasks API has none; containerd's CRI copies one there): then it
      // gets --all's other flags, which is what ferry's --all shows of such an archive.
      const cctlAll = stats ? ['--all'] : ['--ps-tree', '--ps-tree-cmd', '--ps-tree-env', '--files', '--sockets', '--mounts'];
      const tools: [string, string, string[]][] = [
        ['ferry', FERRY, ['inspect', '--all', file]],
        ['checkpointctl', 'checkpointctl', ['inspect', ...cctlAll, file]],
      ];
      for (const [, cmd, args] of tools) await timed(cmd, args); // warm-up: page cache, code caches
      const samples: Record<string, Sample[]> = { ferry: [], checkpointctl: [] };
      for (let i = 0; i < n; i++) {
        for (const [label, cmd, args] of i % 2 === 0 ? tools : [...tools].reverse()) samples[label].push(await timed(cmd, args));
      }
      const ferry = figures(samples.ferry);
      const cctl = figures(samples.checkpointctl);
      const r: InspectFormatResult = {
        format, archiveMiB: fs.statSync(file).size / 2 ** 20, ferry, checkpointctl: cctl,
        wallRatio: ratio(ferry.wallS.median, cctl.wallS.median), cpuRatio: ratio(ferry.cpuS.median, cctl.cpuS.median),
      };
      formats.push(r);
      log(`${format}: ferry ${fmt(ferry.wallS.median, 2)} s / checkpointctl ${fmt(cctl.wallS.median, 2)} s wall (${fmtRatio(r.wallRatio)}), cpu ${fmtRatio(r.cpuRatio)}`);
    }
    return { n, mib, initRssMiB: made.initRssMiB, formats, loadBefore, loadAfter: os.loadavg().map((x) => Math.round(x * 100) / 100), nodeExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS !== undefined, machine };
  } finally {
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function renderInspect(r: InspectBenchResult): string {
  const m = r.machine;
  const rows = r.formats.map((f) => [
    f.format, fmt(f.archiveMiB, 0),
    fmt(f.ferry.wallS.median, 2), fmt(f.checkpointctl.wallS.median, 2), fmtRatio(f.wallRatio),
    fmt(f.ferry.cpuS.median, 2), fmt(f.checkpointctl.cpuS.median, 2), fmtRatio(f.cpuRatio),
    fmt(f.ferry.maxRssMiB.median, 0), fmt(f.checkpointctl.maxRssMiB.median, 0),
  ]);
  const head = ['archive', 'MiB', 'ferry wall s', 'checkpointctl wall s', 'wall ferry/cctl', 'ferry cpu s', 'checkpointctl cpu s', 'cpu ferry/cctl', 'ferry peak RSS MiB', 'checkpointctl peak RSS MiB'];
  const table = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n');
  const spread = r.formats.map((f) => `${f.format}: ferry wall ${fmt(f.ferry.wallS.min, 2)}–${fmt(f.ferry.wallS.max, 2)} s, checkpointctl ${fmt(f.checkpointctl.wallS.min, 2)}–${fmt(f.checkpointctl.wallS.max, 2)} s`).join('; ');
  return [
    `## Results: ferry inspect --all vs checkpointctl inspect --all`,
    `- date: ${m.date}; CPU: ${m.cpuModel}, nproc ${m.nproc}; memory ${m.memTotalMiB} MiB; kernel ${m.kernel}; node ${m.node}; ${m.criu}; checkpointctl 1.3.0`,
    `- ferry build: ${m.ferryBuild}`,
    `- load average before / after the timed runs: ${r.loadBefore.join(' / ')} → ${r.loadAfter.join(' / ')}; other containerd processes: ${m.otherContainerds} (the VM is shared)`,
    `- NODE_EXTRA_CA_CERTS in ferry's environment: **${r.nodeExtraCaCerts ? 'yes' : 'no'}** (NOTES.md: it costs a Node start ~85 ms)`,
    '',
    `### Inspecting a checkpoint of a container holding ${r.mib} MiB (init RSS ${fmt(r.initRssMiB, 0)} MiB; N=${r.n} each, interleaved, medians)`,
    '',
    table,
    '',
    `Whole processes under /usr/bin/time, output to /dev/null. Spread (min–max): ${spread}.`,
  ].join('\n');
}

/** Rewrites the inspect section of docs/benchmarks.md. */
export function recordInspect(r: InspectBenchResult): void {
  replaceDocSection(REPO_ROOT, 'inspect', renderInspect(r));
}

async function main(): Promise<void> {
  const started = Date.now();
  const log = (msg: string) => console.log(`[bench-inspect ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'ferry.js'))) throw new Error('dist/ferry.js missing: run `make build` first');
  const r = await benchInspect(log);
  fs.mkdirSync(path.join(REPO_ROOT, 'build', 'bench'), { recursive: true });
  fs.writeFileSync(path.join(REPO_ROOT, 'build', 'bench', 'results-inspect.json'), `${JSON.stringify(r, null, 2)}\n`);
  console.log(`\n${renderInspect(r)}\n`);
  if ((process.env.BENCH_RECORD ?? '1') === '1') {
    recordInspect(r);
    log('recorded in docs/benchmarks.md');
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  });
}
