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
//   BENCH_QUICK=1        ~1-minute smoke run (small N, 5 containers, 64 MiB); never recorded
//   BENCH_ONLY=a,b       suites to run: lifecycle,memory,checkpoint,staging (default all)
//   BENCH_RECORD=0|1     write docs/benchmarks.{md,json} (default: 1 unless quick)
//   BENCH_WITHOUT_CA=1   remove NODE_EXTRA_CA_CERTS from containerd's environment (recorded
//                        as its own variant; NOTES.md: it costs ~85 ms per Node start)
//   BENCH_CONTAINERD=2.1 use the extracted containerd 2.1 instead of 1.7
//   BENCH_N (lifecycle, 20), BENCH_MEM_MAX (50), BENCH_CKPT_N (5), BENCH_CKPT_MIB (256),
//   BENCH_STAGE_N (5), BENCH_STAGE_MIB (256)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT, startContainerd, type Containerd, type ContainerdVersion } from '../test/helpers/containerd';
import { benchCheckpoint } from './checkpoint';
import { BenchContext } from './context';
import { benchLifecycle, createTimedShims } from './lifecycle';
import { machineInfo } from './machine';
import { benchMemory } from './memory';
import { recordInDocs, renderVariant, SuiteRecord, VariantRecord } from './report';
import { benchStaging } from './staging';

const SUITES = ['lifecycle', 'memory', 'checkpoint', 'staging'] as const;
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
  const t0 = Date.now();
  ctx.log(`--- ${name}`);
  try {
    const result = await fn();
    ctx.log(`--- ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return { ranAt, quick: ctx.quick, result };
  } catch (err) {
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    ctx.log(`--- ${name} FAILED: ${msg}`);
    return { ranAt, quick: ctx.quick, error: err instanceof Error ? err.message : String(err) };
  }
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const record = process.env.BENCH_RECORD ? process.env.BENCH_RECORD === '1' : !quick;
  const withoutCa = process.env.BENCH_WITHOUT_CA === '1';
  const version = (process.env.BENCH_CONTAINERD ?? '1.7') as ContainerdVersion;
  const suites = selectedSuites();
  const started = Date.now();
  const log = (msg: string) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);

  const distPath = path.join(REPO_ROOT, 'dist', 'shim.js');
  if (!fs.existsSync(distPath)) throw new Error('dist/shim.js missing: run `make build` (node contrib/bundle.js) first');
  // Every ferry shim loads dist/shim.js when it starts: a rebuild during the run means later
  // samples measured other code (and a shim started mid-write can crash). Flag it.
  const distMtimeAtStart = fs.statSync(distPath).mtimeMs;
  // containerd copies this process's environment (PATH, NODE_EXTRA_CA_CERTS) and passes it to
  // every shim, so both are set here, before containerd starts.
  if (withoutCa) delete process.env.NODE_EXTRA_CA_CERTS;
  const caInEnv = process.env.NODE_EXTRA_CA_CERTS !== undefined;
  const timedShimDir = suites.includes('lifecycle')
    ? createTimedShims({ ferry: path.join(REPO_ROOT, 'shim', 'containerd-shim-ferry-v2'), go: which('containerd-shim-runc-v2') })
    : undefined;
  if (timedShimDir) process.env.PATH = `${timedShimDir}:${process.env.PATH ?? ''}`;

  const variant = `containerd-${version}${withoutCa ? '-without-node-extra-ca-certs' : ''}`;
  const description = `containerd ${version}, NODE_EXTRA_CA_CERTS ${caInEnv ? 'set (as on this machine)' : 'unset'}`;
  log(`${description}; suites: ${suites.join(', ')}${quick ? ' (quick)' : ''}`);

  let c: Containerd | undefined;
  const run: Partial<VariantRecord> & { variant: string; description: string } = { variant, description, warnings: [] };
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    await c?.stop();
    if (timedShimDir) fs.rmSync(timedShimDir, { recursive: true, force: true });
  };
  // Ctrl-C still removes containers, containerd and temp dirs.
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    c = await startContainerd({ version });
    const ctx: BenchContext = { c, image: c.image!.name, quick, log };
    run.machine = machineInfo(c, caInEnv);
    for (const suite of suites) {
      if (suite === 'lifecycle') run.lifecycle = await runSuite(ctx, suite, () => benchLifecycle(ctx, timedShimDir));
      if (suite === 'memory') run.memory = await runSuite(ctx, suite, () => benchMemory(ctx));
      if (suite === 'checkpoint') run.checkpoint = await runSuite(ctx, suite, () => benchCheckpoint(ctx));
      if (suite === 'staging') run.staging = await runSuite(ctx, suite, () => benchStaging(ctx));
    }
  } finally {
    await cleanup();
  }
  const full = run as VariantRecord;
  if (fs.statSync(distPath).mtimeMs !== distMtimeAtStart) {
    full.warnings = [...(full.warnings ?? []), 'dist/shim.js was rebuilt during this run: ferry figures mix builds, and failures may come from a half-written bundle'];
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
