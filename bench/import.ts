// `make bench-import`: `ferry restore --import` against `podman container restore --import`, side by
// side in one run on this machine, for an idle container and one holding 256 MiB, with zstd and
// without compression. Each engine restores archives it wrote itself (ferry's from `ferry
// checkpoint --export`, Podman's from `podman container checkpoint --export`) of the same
// workload, so each is measured on its own format, as a user would use it. Times are wall clock
// of the command, from spawn to exit (the restored process runs when it returns); the container
// is then removed, untimed. Ratios are ferry / podman: above 1 means ferry is slower. ferry runs
// with --json, and a third table gives the medians of where its time went: `outside` is the command's
// wall clock less its durationMs (node's start, the bundle, the connection, the exit), the rest
// are the phases restore.ts times (stage, check, baseImage, prepare, rootfs, container, task).
//
// ferry runs as a user runs it: the launcher shim/ferry executed (its sh half), not `node shim/ferry`.
// It runs against a private containerd 1.7 (test/helpers/containerd.ts), restoring into its
// own shim and into containerd's Go shim; Podman 4.3.1 (bookworm) with runc, machine-wide
// storage, so its containers and image get unique names and are removed afterwards. Podman's
// containers need `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024` here and run without a
// network (`--network none`; ctr's containers have none either).
//
// Environment: BENCH_QUICK=1 (N=1, 64 MiB, not recorded), BENCH_IMPORT_N (samples, 3),
// BENCH_IMPORT_MIB (256), BENCH_RECORD (default 1 unless quick).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Containerd, REPO_ROOT, startContainerd } from '../test/helpers/containerd';
import { FERRY_CLI } from '../test/helpers/ferry-cli';
import { waitFor } from '../test/helpers/procfs';
import { envCount } from './context';
import { machineInfo, type MachineInfo } from './machine';
import { replaceDocSection } from './report';
import { fmt, fmtRatio, msSince, ratio, summarize, type Summary } from './stats';

type Engine = 'ferry (ferry shim)' | 'ferry (Go shim)' | 'podman';
type Compression = 'zstd' | 'none';
type Workload = 'idle' | 'memory';

interface Cell { engine: Engine; workload: Workload; compression: Compression; ms: Summary; archiveBytes: number; phases?: Record<string, number> }

/** What `ferry restore --json` reports of its time. */
interface ImportTimes { wall: number; phases: Record<string, number> }

interface ImportBenchResult {
  machine: MachineInfo;
  loadAtEnd: number[];
  quick: boolean;
  n: number;
  mib: number;
  podman: string;
  cells: Cell[];
  ratios: { engine: Engine; workload: Workload; compression: Compression; median: number }[];
}

const RUNTIME: Record<Exclude<Engine, 'podman'>, string> = {
  'ferry (ferry shim)': 'io.containerd.ferry.v2',
  'ferry (Go shim)': 'io.containerd.runc.v2',
};
const IDLE = 'echo ready > /tmp/ready; while :; do sleep 1; done';
/** N MiB of base64 text held in the shell's memory. */
const holding = (mib: number) => `x=$(head -c ${Math.round((mib * 1024 * 1024 * 3) / 4)} /dev/urandom | base64); echo ready > /tmp/ready; while :; do sleep 1; done`;

/** Runs a command to completion, timing it from spawn to exit; throws with its stderr on failure. */
function timedWithOutput(what: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('close', (code) => {
      const ms = msSince(t0);
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${what} exited ${code}: ${stderr.trim()}`));
    });
  });
}

async function timed(what: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return (await timedWithOutput(what, cmd, args, env)).ms;
}

class ImportBench {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-import-'));
  readonly podmanImage = `localhost/ferry-bench-import-${process.pid}:latest`;
  private readonly podmanNames = new Set<string>();
  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly c: Containerd) {
    this.env = { ...process.env, FERRY_STATE_DIR: path.join(this.dir, 'state') };
  }

  private ferry(args: string[]): string[] {
    return ['-a', this.c.address, '-n', this.c.namespace, ...args];
  }

  /** The test image's layer imported into Podman under a name of ours (same files as containerd's). */
  async importPodmanImage(): Promise<void> {
    const img = this.c.image!;
    const layer = path.join(this.dir, 'layer.tar');
    fs.writeFileSync(layer, execFileSync('tar', ['-xOf', img.tarPath, `blobs/sha256/${img.layerDigest.replace('sha256:', '')}`], { maxBuffer: 1 << 28 }));
    await timed('podman import', 'podman', ['import', layer, this.podmanImage]);
  }

  private async ready(check: () => Promise<boolean>, id: string): Promise<void> {
    if (!(await waitFor(async () => ((await check()) ? true : undefined), 300000, 500))) throw new Error(`${id} never became ready`);
  }

  /** A ferry archive (ferry checkpoint --export) of a container running `script`. */
  async ferryArchive(workload: Workload, script: string, compression: Compression): Promise<string> {
    const id = `bi-${process.pid}-${workload}-${compression}`;
    const r = await this.c.ctr(['run', '-d', this.c.image!.name, id, 'sh', '-c', script]);
    if (r.code !== 0) throw new Error(`ctr run: ${r.stderr}`);
    await this.ready(async () => (await this.c.ctr(['task', 'exec', '--exec-id', `r${Date.now()}`, id, 'cat', '/tmp/ready'])).stdout.includes('ready'), id);
    const file = path.join(this.dir, `ferry-${workload}.${compression === 'zstd' ? 'tar.zst' : 'tar'}`);
    await timed('ferry checkpoint', FERRY_CLI, this.ferry(['checkpoint', id, '--compress', compression, '--export', file]), this.env);
    await this.c.ctr(['containers', 'rm', id]);
    return file;
  }

  /** A Podman archive (podman container checkpoint --export) of a container running `script`. */
  async podmanArchive(workload: Workload, script: string, compression: Compression): Promise<string> {
    const name = `ferry-bench-import-${process.pid}-${workload}-${compression}`;
    this.podmanNames.add(name);
    await timed('podman run', 'podman', ['run', '-d', '--name', name, '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', this.podmanImage, 'sh', '-c', script]);
    await this.ready(async () => { try { return execFileSync('podman', ['exec', name, 'cat', '/tmp/ready'], { encoding: 'utf8' }).includes('ready'); } catch { return false; } }, name);
    const file = path.join(this.dir, `podman-${workload}.${compression === 'zstd' ? 'tar.zst' : 'tar'}`);
    await timed('podman checkpoint', 'podman', ['container', 'checkpoint', '--compress', compression, '--export', file, name]);
    await timed('podman rm', 'podman', ['rm', '-f', name]);
    return file;
  }

  async ferryImport(engine: Exclude<Engine, 'podman'>, file: string, id: string): Promise<ImportTimes> {
    const r = await timedWithOutput('ferry restore', FERRY_CLI, this.ferry(['restore', '--import', file, '--name', id, '--runtime', RUNTIME[engine], '--json']), this.env);
    await timed('ferry rm', FERRY_CLI, this.ferry(['rm', id]), this.env);
    const result = JSON.parse(r.stdout) as { durationMs: number; timings: Record<string, number> };
    return { wall: r.ms, phases: { outside: r.ms - result.durationMs, ...result.timings } };
  }

  async podmanImport(file: string, name: string): Promise<number> {
    this.podmanNames.add(name);
    const ms = await timed('podman restore', 'podman', ['container', 'restore', '--import', file, '--name', name]);
    await timed('podman rm', 'podman', ['rm', '-f', name]);
    return ms;
  }

  async cleanup(): Promise<void> {
    for (const n of this.podmanNames) await timed('podman rm', 'podman', ['rm', '-f', n]).catch(() => undefined);
    await timed('podman rmi', 'podman', ['rmi', '-f', this.podmanImage]).catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const PHASES = ['outside', 'stage', 'check', 'baseImage', 'prepare', 'rootfs', 'container', 'task'];

function render(r: ImportBenchResult): string {
  const w = (x: Workload) => (x === 'idle' ? 'idle' : `holding ${r.mib} MiB`);
  const t = (head: string[], rows: string[][]) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n');
  const m = r.machine;
  return [
    `### ferry restore --import vs podman container restore --import (ms, N=${r.n} each, interleaved${r.quick ? ', quick run' : ''})`,
    '',
    `Machine: ${m.cpuModel}, ${m.nproc} CPUs, ${m.memTotalMiB} MiB, kernel ${m.kernel}, cgroups ${m.cgroups}; ${m.containerd}; ${m.runc}; ${m.criu}; ${r.podman}; node ${m.node}; ferry ${m.ferryBuild}.`,
    `Load average at start ${m.loadAverage.join(' / ')}, at end ${r.loadAtEnd.join(' / ')}; ${m.otherContainerds} other containerd processes on the machine (shared VM). Run ${m.date}.`,
    'Each engine imports the archive it exported itself of the same workload; wall clock of the command until it returns with the process running.',
    '',
    t(['workload', 'compression', 'engine', 'median', 'p90', 'min', 'archive MiB'],
      r.cells.map((c) => [w(c.workload), c.compression, c.engine, fmt(c.ms.median, 0), fmt(c.ms.p90, 0), fmt(c.ms.min, 0), fmt(c.archiveBytes / 2 ** 20, 1)])),
    '',
    t(['workload', 'compression', 'ratio', 'median'], r.ratios.map((x) => [w(x.workload), x.compression, `${x.engine} / podman`, fmtRatio(x.median)])),
    '',
    `Where ferry's time went (medians, ms; outside = wall clock less the command's own durationMs: node's start, the bundle, the connection, the exit; task = Tasks.Create, and Start on 1.7):`,
    '',
    t(['workload', 'compression', 'engine', ...PHASES], r.cells.filter((c) => c.phases).map((c) => [w(c.workload), c.compression, c.engine, ...PHASES.map((k) => fmt(c.phases![k] ?? 0, 0))])),
  ].join('\n');
}

function record(md: string): void {
  replaceDocSection(REPO_ROOT, 'import', md, '## Checkpoint import (ferry vs Podman)');
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const recordIt = process.env.BENCH_RECORD ? process.env.BENCH_RECORD === '1' : !quick;
  const n = envCount('BENCH_IMPORT_N', 3, 1, quick);
  const mib = envCount('BENCH_IMPORT_MIB', 256, 64, quick);
  const started = Date.now();
  const log = (msg: string) => console.log(`[bench-import ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);
  const c = await startContainerd({ version: '1.7' });
  const b = new ImportBench(c);
  const stop = async () => { await b.cleanup(); await c.stop(); };
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  try {
    const machine = machineInfo(c, process.env.NODE_EXTRA_CA_CERTS !== undefined);
    const podman = execFileSync('podman', ['--version'], { encoding: 'utf8' }).trim();
    await b.importPodmanImage();
    const engines: Engine[] = ['ferry (ferry shim)', 'ferry (Go shim)', 'podman'];
    const cells: Cell[] = [];
    for (const workload of ['idle', 'memory'] as const) {
      const script = workload === 'idle' ? IDLE : holding(mib);
      for (const compression of ['zstd', 'none'] as const) {
        log(`${workload} ${compression}: making each engine's archive`);
        const archives = { ferry: await b.ferryArchive(workload, script, compression), podman: await b.podmanArchive(workload, script, compression) };
        const samples = new Map<Engine, number[]>();
        const phases = new Map<Engine, Record<string, number[]>>();
        for (let i = 0; i < n; i++) {
          // Alternate which engine goes first, so none always runs on a warmer page cache.
          for (const e of i % 2 === 0 ? engines : [...engines].reverse()) {
            const name = `bi-${process.pid}-${workload}-${compression}-${i}-${e === 'podman' ? 'p' : e === 'ferry (Go shim)' ? 'g' : 'f'}`;
            let ms: number;
            if (e === 'podman') {
              ms = await b.podmanImport(archives.podman, name);
            } else {
              const t = await b.ferryImport(e, archives.ferry, name);
              ms = t.wall;
              const into = phases.get(e) ?? {};
              for (const [k, v] of Object.entries(t.phases)) (into[k] ??= []).push(v);
              phases.set(e, into);
            }
            samples.set(e, [...(samples.get(e) ?? []), ms]);
            log(`${workload} ${compression} ${e}: ${ms.toFixed(0)} ms`);
          }
        }
        for (const [engine, s] of samples) {
          const p = phases.get(engine);
          cells.push({
            engine, workload, compression, ms: summarize(s), archiveBytes: fs.statSync(engine === 'podman' ? archives.podman : archives.ferry).size,
            ...(p ? { phases: Object.fromEntries(Object.entries(p).map(([k, v]) => [k, summarize(v).median])) } : {}),
          });
        }
      }
    }
    const ratios: ImportBenchResult['ratios'] = [];
    for (const cell of cells) {
      if (cell.engine === 'podman') continue;
      const p = cells.find((x) => x.engine === 'podman' && x.workload === cell.workload && x.compression === cell.compression)!;
      ratios.push({ engine: cell.engine, workload: cell.workload, compression: cell.compression, median: ratio(cell.ms.median, p.ms.median) });
    }
    const result: ImportBenchResult = { machine, loadAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100), quick, n, mib, podman, cells, ratios };
    const outDir = path.join(REPO_ROOT, 'build', 'bench');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'results-import.json'), `${JSON.stringify(result, null, 2)}\n`);
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
