// `make bench-export`: `ferry checkpoint --export` against `podman container checkpoint
// --export`, side by side in one run on this machine, for an idle container and one holding
// 256 MiB, with zstd and without compression; and ferry's archive writer against `tar` piped to
// `zstd` over the same files. Ratios are ferry / podman (or ferry / tar): above 1 means ferry is
// slower. Both engines checkpoint with "leave running", so one container per engine and workload
// serves every sample (Podman and ferry would otherwise differ by how fast they recreate it).
//
// ferry runs as a user runs it: the launcher shim/ferry executed (its sh half), not `node shim/ferry`.
// It runs against a private containerd 1.7 (test/helpers/containerd.ts) with each runtime it
// supports (its own shim and containerd's Go shim); Podman 4.3.1 (Debian bookworm) with runc, its
// storage machine-wide, so its container and image get unique names and are removed afterwards.
// Podman's containers need `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024` here: its defaults
// raise rlimits, which this VM does not permit (no CAP_SYS_RESOURCE). Both engines' containers run
// without a network (ctr's default; podman --network none).
//
// Environment: BENCH_QUICK=1 (N=1, 64 MiB, not recorded), BENCH_EXPORT_N (samples, 5),
// BENCH_EXPORT_WORKLOADS (idle,memory),
// BENCH_EXPORT_MIB (256), BENCH_RECORD (default 1 unless quick).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Containerd, REPO_ROOT, startContainerd } from '../test/helpers/containerd';
import { FERRY_CLI } from '../test/helpers/ferry-cli';
import { waitFor } from '../test/helpers/procfs';
import { archiveStream, checkpointArchiveEntries } from '../src/format/checkpoint-archive-writer';
import { envCount } from './context';
import { machineInfo, MachineInfo } from './machine';
import { replaceDocSection } from './report';
import { fmt, fmtRatio, msSince, ratio, summarize, Summary } from './stats';

type Engine = 'ferry (ferry shim)' | 'ferry (Go shim)' | 'podman';
type Compression = 'zstd' | 'none';
type Workload = 'idle' | 'memory';

interface Sample { ms: number; bytes: number; /** ferry only: its own durationMs (wall minus Node start-up and exit), and per phase. */ innerMs?: number; timings?: Record<string, number> }
interface Cell { engine: Engine; workload: Workload; compression: Compression; ms: Summary; innerMs?: Summary; bytes: number }

export interface ExportBenchResult {
  machine: MachineInfo;
  loadAtEnd: number[];
  quick: boolean;
  n: number;
  mib: number;
  podman: string;
  cells: Cell[];
  /** ferry / podman per workload and compression, by median. */
  ratios: { engine: Engine; workload: Workload; compression: Compression; median: number }[];
  writer: { what: string; ms: Summary; bytes: number }[];
  writerRatios: { compression: string; vs: string; median: number }[];
  archiveMiB: number;
}

const FERRY_RUNTIMES: Record<Exclude<Engine, 'podman'>, string> = {
  'ferry (ferry shim)': 'io.containerd.ferry.v2',
  'ferry (Go shim)': 'io.containerd.runc.v2',
};
const IDLE = 'echo ready > /tmp/ready; while :; do sleep 1; done';
/** base64 of N*3/4 random bytes: N bytes of text held by the shell (compresses as text does). */
const holding = (mib: number) => `x=$(head -c ${Math.round((mib * 1024 * 1024 * 3) / 4)} /dev/urandom | base64); echo ready > /tmp/ready; while :; do sleep 1; done`;

function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600000);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, ms: msSince(t0) }); });
  });
}

async function must(what: string, p: ReturnType<typeof run>): Promise<Awaited<ReturnType<typeof run>>> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

class Bench {
  readonly dir: string;
  private readonly podmanNames: string[] = [];
  readonly podmanImage = `localhost/ferry-bench-export-${process.pid}:latest`;

  constructor(readonly c: Containerd, readonly log: (m: string) => void) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-export-'));
  }

  /** The test image's single layer, imported into Podman under a name of our own. */
  async importPodmanImage(): Promise<void> {
    const img = this.c.image!;
    const layer = path.join(this.dir, 'layer.tar');
    fs.writeFileSync(layer, execFileSync('tar', ['-xOf', img.tarPath, `blobs/sha256/${img.layerDigest.replace('sha256:', '')}`], { maxBuffer: 1 << 28 }));
    await must('podman import', run('podman', ['import', layer, this.podmanImage]));
  }

  async startFerry(engine: Exclude<Engine, 'podman'>, id: string, script: string): Promise<void> {
    const r = await this.c.ctr(['run', '-d', '--runtime', FERRY_RUNTIMES[engine], this.c.image!.name, id, 'sh', '-c', script]);
    if (r.code !== 0) throw new Error(`ctr run: ${r.stderr}`);
    const ok = await waitFor(async () => ((await this.c.ctr(['task', 'exec', '--exec-id', `r${Date.now()}`, id, 'cat', '/tmp/ready'])).stdout.includes('ready') ? true : undefined), 300000, 500);
    if (!ok) throw new Error(`${id} never became ready`);
  }

  async startPodman(name: string, script: string): Promise<void> {
    this.podmanNames.push(name);
    await must('podman run', run('podman', ['run', '-d', '--name', name, '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', this.podmanImage, 'sh', '-c', script]));
    const ok = await waitFor(async () => ((await run('podman', ['exec', name, 'cat', '/tmp/ready'])).stdout.includes('ready') ? true : undefined), 300000, 500);
    if (!ok) throw new Error(`${name} never became ready`);
  }

  async ferryExport(id: string, compression: Compression, file: string): Promise<Sample> {
    fs.rmSync(file, { force: true });
    const r = await must('ferry checkpoint', run(FERRY_CLI, ['-a', this.c.address, '-n', this.c.namespace, '--json', 'checkpoint', id, '--leave-running', '--compress', compression, '--export', file]));
    const out = JSON.parse(r.stdout) as { durationMs: number; timings: Record<string, number> };
    return { ms: r.ms, bytes: fs.statSync(file).size, innerMs: out.durationMs, timings: out.timings };
  }

  async podmanExport(name: string, compression: Compression, file: string): Promise<Sample> {
    fs.rmSync(file, { force: true });
    const r = await must('podman container checkpoint', run('podman', ['container', 'checkpoint', '--leave-running', '--compress', compression, '--export', file, name]));
    return { ms: r.ms, bytes: fs.statSync(file).size };
  }

  async cleanup(): Promise<void> {
    for (const n of this.podmanNames) await run('podman', ['rm', '-f', n]);
    await run('podman', ['rmi', '-f', this.podmanImage]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** ferry's archive writer over an unpacked checkpoint (in this process), vs tar | zstd. */
async function writerBench(b: Bench, archive: string, n: number): Promise<{ rows: ExportBenchResult['writer']; ratios: ExportBenchResult['writerRatios']; mib: number }> {
  const src = path.join(b.dir, 'unpacked');
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  execFileSync('tar', ['--zstd', '-xf', archive, '-C', src]);
  const json = (name: string) => JSON.parse(fs.readFileSync(path.join(src, name), 'utf8'));
  const parts = {
    configDump: json('config.dump'), specDump: json('spec.dump'), statusDump: json('status.dump'),
    imagesDir: path.join(src, 'checkpoint'), rootfsDiffTar: path.join(src, 'rootfs-diff.tar'), deletedFiles: json('deleted.files'),
    dumpLog: path.join(src, 'dump.log'), statsDump: path.join(src, 'stats-dump'),
  };
  const mib = Number(execFileSync('du', ['-sm', src], { encoding: 'utf8' }).split('\t')[0]);
  const out = path.join(b.dir, 'writer.out');
  const samples: Record<string, Sample[]> = {};
  const add = (what: string, s: Sample) => { (samples[what] ??= []).push(s); };
  for (let i = 0; i < n; i++) {
    for (const compression of ['zstd', 'none'] as const) {
      const t0 = process.hrtime.bigint();
      const entries = await checkpointArchiveEntries(parts);
      await pipeline(archiveStream(entries, { compression }).stream, fs.createWriteStream(out));
      add(`ferry writer, ${compression}`, { ms: msSince(t0), bytes: fs.statSync(out).size });
    }
    const tz = await must('tar | zstd', run('sh', ['-c', `tar -C '${src}' -cf - . | zstd -q -3 > '${out}'`]));
    add('tar | zstd -3', { ms: tz.ms, bytes: fs.statSync(out).size });
    const tz1 = await must('tar | zstd -1', run('sh', ['-c', `tar -C '${src}' -cf - . | zstd -q -1 > '${out}'`]));
    add('tar | zstd -1', { ms: tz1.ms, bytes: fs.statSync(out).size });
    const t = await must('tar', run('tar', ['-C', src, '-cf', out, '.']));
    add('tar (none)', { ms: t.ms, bytes: fs.statSync(out).size });
  }
  const rows = Object.entries(samples).map(([what, s]) => ({ what, ms: summarize(s.map((x) => x.ms)), bytes: s[0]!.bytes }));
  const med = (what: string) => rows.find((r) => r.what === what)!.ms.median;
  const ratios = [
    { compression: 'zstd', vs: 'tar | zstd -3 (zstd\'s default level)', median: ratio(med('ferry writer, zstd'), med('tar | zstd -3')) },
    { compression: 'zstd', vs: 'tar | zstd -1 (ferry\'s level)', median: ratio(med('ferry writer, zstd'), med('tar | zstd -1')) },
    { compression: 'none', vs: 'tar (none)', median: ratio(med('ferry writer, none'), med('tar (none)')) },
  ];
  fs.rmSync(src, { recursive: true, force: true });
  return { rows, ratios, mib };
}

function render(r: ExportBenchResult): string {
  const cellRows = r.cells.map((c) => [c.workload === 'idle' ? 'idle' : `holding ${r.mib} MiB`, c.compression, c.engine, fmt(c.ms.median, 0), fmt(c.ms.p90, 0), fmt(c.ms.min, 0), c.innerMs ? fmt(c.innerMs.median, 0) : '–', fmt(c.bytes / 2 ** 20, 1)]);
  const ratioRows = r.ratios.map((x) => [x.workload === 'idle' ? 'idle' : `holding ${r.mib} MiB`, x.compression, `${x.engine} / podman`, fmtRatio(x.median)]);
  const writerRows = r.writer.map((w) => [w.what, fmt(w.ms.median, 0), fmt(w.ms.p90, 0), fmt(w.ms.min, 0), fmt(w.bytes / 2 ** 20, 1)]);
  const cell = (x: string) => x.replace(/\|/g, '\\|');
  const t = (head: string[], rows: string[][]) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((x) => `| ${x.map(cell).join(' | ')} |`)].join('\n');
  const m = r.machine;
  return [
    `### ferry checkpoint --export vs podman container checkpoint --export (ms, N=${r.n} each, interleaved, --leave-running${r.quick ? ', quick run' : ''})`,
    '',
    `Machine: ${m.cpuModel}, ${m.nproc} CPUs, ${m.memTotalMiB} MiB, kernel ${m.kernel}, cgroups ${m.cgroups}; ${m.containerd}; ${m.runc}; ${m.criu}; ${r.podman}; node ${m.node}; ferry ${m.ferryBuild}.`,
    `Load average at start ${m.loadAverage.join(' / ')}, at end ${r.loadAtEnd.join(' / ')}; ${m.otherContainerds} other containerd processes on the machine (shared VM). Run ${m.date}.`,
    '',
    t(['workload', 'compression', 'engine', 'median', 'p90', 'min', 'ferry in-process median', 'archive MiB'], cellRows),
    '',
    '"ferry in-process" is the command\'s own `durationMs` (from its first containerd call to its result): the rest of the wall time is Node\'s start-up and exit.',
    '',
    t(['workload', 'compression', 'ratio', 'median'], ratioRows),
    '',
    `### ferry's archive writer vs tar | zstd over the same files (${r.archiveMiB} MiB unpacked checkpoint of the ${r.mib} MiB container; ms, N=${r.n})`,
    '',
    t(['writer', 'median', 'p90', 'min', 'output MiB'], writerRows),
    '',
    t(['compression', 'ferry writer / …', 'median'], r.writerRatios.map((x) => [x.compression, x.vs, fmtRatio(x.median)])),
  ].join('\n');
}

function record(md: string): void {
  replaceDocSection(REPO_ROOT, 'export', md, '## Checkpoint export (ferry vs Podman)');
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const recordIt = process.env.BENCH_RECORD ? process.env.BENCH_RECORD === '1' : !quick;
  const n = envCount('BENCH_EXPORT_N', 5, 1, quick);
  const mib = envCount('BENCH_EXPORT_MIB', 256, 64, quick);
  const started = Date.now();
  const log = (msg: string) => console.log(`[bench-export ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);
  const c = await startContainerd({ version: '1.7' });
  const b = new Bench(c, log);
  const stop = async () => { await b.cleanup(); await c.stop(); };
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  try {
    const machine = machineInfo(c, process.env.NODE_EXTRA_CA_CERTS !== undefined);
    const podman = execFileSync('podman', ['--version'], { encoding: 'utf8' }).trim();
    await b.importPodmanImage();
    const engines: Engine[] = ['ferry (ferry shim)', 'ferry (Go shim)', 'podman'];
    const cells: Cell[] = [];
    let memoryArchive = '';
    const workloads = (process.env.BENCH_EXPORT_WORKLOADS ?? 'idle,memory').split(',') as Workload[];
    for (const workload of workloads) {
      const script = workload === 'idle' ? IDLE : holding(mib);
      const names: Record<Engine, string> = {
        'ferry (ferry shim)': `bx-ferry-${process.pid}-${workload}`,
        'ferry (Go shim)': `bx-go-${process.pid}-${workload}`,
        podman: `ferry-bench-export-${process.pid}-${workload}`,
      };
      log(`${workload}: starting one container per engine`);
      for (const e of engines) {
        if (e === 'podman') await b.startPodman(names[e], script);
        else await b.startFerry(e, names[e], script);
      }
      const samples = new Map<string, Sample[]>();
      for (let i = 0; i < n; i++) {
        for (const compression of ['zstd', 'none'] as const) {
          // Alternate which engine goes first, so none always runs on a warmer page cache.
          const order = i % 2 === 0 ? engines : [...engines].reverse();
          for (const e of order) {
            const file = path.join(b.dir, `${workload}-${e.replace(/\W+/g, '-')}.${compression === 'zstd' ? 'tar.zst' : 'tar'}`);
            const s = e === 'podman' ? await b.podmanExport(names[e], compression, file) : await b.ferryExport(names[e], compression, file);
            if (workload === 'memory' && e === 'ferry (ferry shim)' && compression === 'zstd') memoryArchive = file;
            const key = `${e}|${compression}`;
            samples.set(key, [...(samples.get(key) ?? []), s]);
            log(`${workload} ${compression} ${e}: ${s.ms.toFixed(0)} ms, ${(s.bytes / 2 ** 20).toFixed(1)} MiB${s.timings ? ` ${JSON.stringify(s.timings)}` : ''}`);
          }
        }
      }
      for (const [key, s] of samples) {
        const [engine, compression] = key.split('|') as [Engine, Compression];
        const inner = s.filter((x) => x.innerMs !== undefined).map((x) => x.innerMs!);
        cells.push({ engine, workload, compression, ms: summarize(s.map((x) => x.ms)), ...(inner.length ? { innerMs: summarize(inner) } : {}), bytes: s[s.length - 1]!.bytes });
      }
      for (const e of engines) {
        if (e === 'podman') await run('podman', ['rm', '-f', names[e]]);
        else { await c.ctr(['task', 'kill', '-s', 'SIGKILL', names[e]]); await c.ctr(['task', 'rm', '-f', names[e]]); await c.ctr(['containers', 'rm', names[e]]); }
      }
    }
    const ratios: ExportBenchResult['ratios'] = [];
    for (const cell of cells) {
      if (cell.engine === 'podman') continue;
      const p = cells.find((x) => x.engine === 'podman' && x.workload === cell.workload && x.compression === cell.compression)!;
      ratios.push({ engine: cell.engine, workload: cell.workload, compression: cell.compression, median: ratio(cell.ms.median, p.ms.median) });
    }
    log('archive writer vs tar | zstd');
    const writer = memoryArchive ? await writerBench(b, memoryArchive, n) : { rows: [], ratios: [], mib: 0 };
    const result: ExportBenchResult = {
      machine, loadAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100), quick, n, mib, podman, cells, ratios,
      writer: writer.rows, writerRatios: writer.ratios, archiveMiB: writer.mib,
    };
    const outDir = path.join(REPO_ROOT, 'build', 'bench');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'results-export.json'), `${JSON.stringify(result, null, 2)}\n`);
    const md = render(result);
    console.log(`\n${md}\n`);
    if (recordIt) { record(md); log('recorded in docs/benchmarks.md'); }
  } finally {
    await stop();
  }
  log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
