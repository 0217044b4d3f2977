// `make bench`: ferry (io.containerd.ferry.v2) against containerd's Go shim
// (io.containerd.runc.v2), side by side in one run against one private containerd 1.7 started
// by the e2e harness (test/helpers/containerd.ts). Prints ratios (ferry/go) and records the
// figures with the machine they came from in docs/benchmarks.md and docs/benchmarks.json.
//
// Built and run as one esbuild bundle (the e2e helpers resolve the repo root from __dirname,
// two levels up, so the bundle lives in build/bench/):
//   npx esbuild bench/run.ts --bundle --platform=node --target=node20 --outfile=build/bench/run.js && node build/bench/run.js
//
// Environment:
//   BENCH_QUICK=1        ~2-minute smoke run (small N, 5 containers, 64 MiB); never recorded
//   BENCH_ONLY=a,b       suites to run: lifecycle,operations,exit,memory,checkpoint,staging
//                        (default all)
//   BENCH_RECORD=0|1     write docs/benchmarks.{md,json} (default: 1 unless quick)
//   BENCH_CA=set|unset   NODE_EXTRA_CA_CERTS in containerd's environment: `set` puts the system
//                        CA bundle there if the environment has none, `unset` removes it
//                        (BENCH_WITHOUT_CA=1 is the same); default: as the environment has it.
//                        Recorded as separate variants (NOTES.md: ~40-85 ms per Node start)
//   BENCH_CONTAINERD=2.1 use the extracted containerd 2.1 instead of 1.7
//   BENCH_DEADLINE_MIN   suites not started by then are skipped (default 17; `make bench` runs
//                        two variants and must end within ~25 minutes)
//   BENCH_N (lifecycle, 20), BENCH_OPS_N (20), BENCH_EXIT_N (100), BENCH_MEM_MAX (50),
//   BENCH_CKPT_N (5), BENCH_CKPT_MIB (256), BENCH_STAGE_N (5), BENCH_STAGE_MIB (256)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT, startContainerd, type Containerd, type ContainerdVersion } from '../test/helpers/containerd';
import { benchCheckpoint } from './checkpoint';
import { BenchContext } from './context';
import { createCpuMeter, type CpuMeter } from './cpu-meter';
import { benchExitLatency } from './exit-latency';
import { benchOperations } from './operations';
import { benchLifecycle, createTimedShims } from './lifecycle';
import { machineInfo } from './machine';
import { benchMemory } from './memory';
import { recordInDocs, renderVariant, SuiteRecord, SUITES, VariantRecord } from './report';
import { benchStaging } from './staging';

type Suite = (typeof SUITES)[number];

function selectedSuites(): Suite[] {
  const only = process.env.BENCH_ONLY;
  if (!only) return [...SUITES];
  const wanted = only.split(',').map((s) => s.trim());
  const bad = wanted.filter((s) => !(SUITES as readonly string[]).includes(s));
  if (bad.length) throw new Error(`BENCH_ONLY: unknown suite(s) ${bad.join(', ')}; known: ${SUITES.join(', ')}`);
  return wanted as Suite[];
}

function which(bin: string): string {
  return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim();
}

async function runSuite<T>(ctx: BenchContext, name: string, fn: () => Promise<T>): Promise<SuiteRecord<T>> {
  const ranAt = new Date().toISOString();
  const loadAverage = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const t0 = Date.now();
  ctx.log(`--- ${name} (load ${loadAverage.join(' / ')})`);
  try {
    const result = await fn();
    ctx.log(`--- ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return { ranAt, quick: ctx.quick, loadAverage, result };
  } catch (err) {
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    ctx.log(`--- ${name} FAILED: ${msg}`);
    return { ranAt, quick: ctx.quick, loadAverage, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Applies BENCH_CA (or the older BENCH_WITHOUT_CA=1) to this process's environment, which containerd copies. */
function applyCaChoice(): void {
  const choice = process.env.BENCH_WITHOUT_CA === '1' ? 'unset' : (process.env.BENCH_CA ?? 'env');
  if (choice === 'unset') delete process.env.NODE_EXTRA_CA_CERTS;
  else if (choice === 'set') process.env.NODE_EXTRA_CA_CERTS ??= '/etc/ssl/certs/ca-certificates.crt';
  else if (choice !== 'env') throw new Error(`BENCH_CA: expected set, unset or env, got ${choice}`);
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const record = process.env.BENCH_RECORD ? process.env.BENCH_RECORD === '1' : !quick;
  const version = (process.env.BENCH_CONTAINERD ?? '1.7') as ContainerdVersion;
  const suites = selectedSuites();
  const started = Date.now();
  const log = (msg: string) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);

  const distPath = path.join(REPO_ROOT, 'dist', 'shim-daemon.js');
  if (!fs.existsSync(distPath)) throw new Error('dist/shim-daemon.js missing: run `make build` (node contrib/bundle.js) first');
  // Every ferry daemon loads dist/shim-daemon.js when it starts: a rebuild during the run means later
  // samples measured other code (and a shim started mid-write can crash). Flag it.
  const distMtimeAtStart = fs.statSync(distPath).mtimeMs;
  // containerd copies this process's environment (PATH, NODE_EXTRA_CA_CERTS) and passes it to
  // every shim, so both are set here, before containerd starts.
  applyCaChoice();
  const caInEnv = process.env.NODE_EXTRA_CA_CERTS !== undefined;
  const deadline = started + 60000 * Number(process.env.BENCH_DEADLINE_MIN ?? 17);
  const timedShimDir = suites.includes('lifecycle')
    ? createTimedShims({ ferry: path.join(REPO_ROOT, 'shim', 'containerd-shim-ferry-v2'), go: which('containerd-shim-runc-v2') })
    : undefined;
  if (timedShimDir) process.env.PATH = `${timedShimDir}:${process.env.PATH ?? ''}`;

  const variant = `containerd-${version}${caInEnv ? '' : '-without-node-extra-ca-certs'}`;
  const description = `containerd ${version}, NODE_EXTRA_CA_CERTS ${caInEnv ? 'set (as on this machine)' : 'unset'}`;
  log(`${description}; suites: ${suites.join(', ')}${quick ? ' (quick)' : ''}`);

  let c: Containerd | undefined;
  let cpu: CpuMeter | undefined;
  const run: Partial<VariantRecord> & { variant: string; description: string } = { variant, description, warnings: [] };
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    await c?.stop();
    cpu?.remove();
    if (timedShimDir) fs.rmSync(timedShimDir, { recursive: true, force: true });
  };
  // Ctrl-C still removes containers, containerd and temp dirs.
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    c = await startContainerd({ version });
    // containerd's children inherit its cgroup: CPU figures that a loaded machine barely moves.
    cpu = c.pid ? createCpuMeter(c.pid, `ferry-bench-${process.pid}`) : undefined;
    if (!cpu) log('no cgroup for CPU accounting: CPU figures are left out');
    const ctx: BenchContext = { c, image: c.image!.name, quick, cpu, log };
    run.machine = machineInfo(c, caInEnv);
    for (const suite of suites) {
      if (Date.now() > deadline) {
        const msg = `${suite}: skipped, the run passed BENCH_DEADLINE_MIN`;
        log(msg);
        run.warnings!.push(msg);
        continue;
      }
      if (suite === 'lifecycle') run.lifecycle = await runSuite(ctx, suite, () => benchLifecycle(ctx, timedShimDir));
      if (suite === 'operations') run.operations = await runSuite(ctx, suite, () => benchOperations(ctx));
      if (suite === 'exit') run.exit = await runSuite(ctx, suite, () => benchExitLatency(ctx));
      if (suite === 'memory') run.memory = await runSuite(ctx, suite, () => benchMemory(ctx));
      if (suite === 'checkpoint') run.checkpoint = await runSuite(ctx, suite, () => benchCheckpoint(ctx));
      if (suite === 'staging') run.staging = await runSuite(ctx, suite, () => benchStaging(ctx));
    }
  } finally {
    await cleanup();
  }
  const full = run as VariantRecord;
  if (fs.statSync(distPath).mtimeMs !== distMtimeAtStart) {
    full.warnings = [...(full.warnings ?? []), 'dist/shim-daemon.js was rebuilt during this run: ferry figures mix builds, and failures may come from a half-written bundle'];
    log(`WARNING: ${full.warnings[full.warnings.length - 1]}`);
  }
  const outDir = path.join(REPO_ROOT, 'build', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, `results-${variant}.json`), `${JSON.stringify(full, null, 2)}\n`);
  console.log(`\n${renderVariant(full)}\n`);
  if (record) {
    recordInDocs(REPO_ROOT, full);
    log('recorded in docs/benchmarks.md and docs/benchmarks.json');
  }
  log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const failedSuites = SUITES.filter((s) => run[s]?.error !== undefined);
  if (failedSuites.length) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
