// Renders results as markdown tables and records them: docs/benchmarks.json (all variants,
// merged so a partial re-run updates only its suites) and the generated section of
// docs/benchmarks.md between `<!-- bench:VARIANT:begin -->` and `<!-- bench:VARIANT:end -->`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointResult } from './checkpoint';
import type { ExitLatencyResult } from './exit-latency';
import type { OperationsResult } from './operations';
import type { LifecycleResult } from './lifecycle';
import type { MachineInfo } from './machine';
import type { MemoryResult } from './memory';
import type { StagingResult } from './staging';
import { fmt, fmtRatio, ratio } from './stats';

export interface SuiteRecord<T> {
  ranAt: string;
  quick: boolean;
  /** 1/5/15-minute load average when the suite began. */
  loadAverage?: number[];
  result?: T;
  error?: string;
  /** Set when a later run of the variant did not re-run this suite and kept it: that run's date and build. */
  carriedFrom?: string;
}

/** The suites of `make bench`, in the order they run (bench/run.ts). */
export const SUITES = ['lifecycle', 'operations', 'exit', 'memory', 'checkpoint', 'staging'] as const;

export interface VariantRecord {
  variant: string;
  description: string;
  machine: MachineInfo;
  warnings?: string[];
  lifecycle?: SuiteRecord<LifecycleResult>;
  operations?: SuiteRecord<OperationsResult>;
  exit?: SuiteRecord<ExitLatencyResult>;
  memory?: SuiteRecord<MemoryResult>;
  checkpoint?: SuiteRecord<CheckpointResult>;
  staging?: SuiteRecord<StagingResult>;
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** ", load a / b / c" for a suite's heading. */
function load(s: SuiteRecord<unknown>): string {
  return s.loadAverage ? `, load ${s.loadAverage.map((x) => x.toFixed(1)).join(' / ')}` : '';
}

function failed(name: string, s: SuiteRecord<unknown>): string {
  return `**${name}: failed** — \`${(s.error ?? '').split('\n')[0]}\``;
}

function lifecycleMd(s: SuiteRecord<LifecycleResult>): string {
  if (!s.result) return failed('lifecycle', s);
  const r = s.result;
  const rows = [
    ['`ctr run --rm … echo hi`', 'ferry', fmt(r.runMs.ferry.median), fmt(r.runMs.ferry.p90), fmt(r.runMs.ferry.mean)],
    ['', 'go', fmt(r.runMs.go.median), fmt(r.runMs.go.p90), fmt(r.runMs.go.mean)],
    ['', '**ferry/go**', fmtRatio(r.runRatio.median), fmtRatio(r.runRatio.p90), fmtRatio(r.runRatio.mean)],
  ];
  if (r.startMs && r.startRatio) {
    rows.push(
      ['shim `start` alone', 'ferry', fmt(r.startMs.ferry.median), fmt(r.startMs.ferry.p90), fmt(r.startMs.ferry.mean)],
      ['', 'go', fmt(r.startMs.go.median), fmt(r.startMs.go.p90), fmt(r.startMs.go.mean)],
      ['', '**ferry/go**', fmtRatio(r.startRatio.median), fmtRatio(r.startRatio.p90), fmtRatio(r.startRatio.mean)],
    );
  }
  if (r.runCpuMs && r.runCpuRatio) {
    rows.push(
      ['CPU of `ctr run --rm`: containerd + shim + runc', 'ferry', fmt(r.runCpuMs.ferry.median), fmt(r.runCpuMs.ferry.p90), fmt(r.runCpuMs.ferry.mean)],
      ['', 'go', fmt(r.runCpuMs.go.median), fmt(r.runCpuMs.go.p90), fmt(r.runCpuMs.go.mean)],
      ['', '**ferry/go**', fmtRatio(r.runCpuRatio.median), fmtRatio(r.runCpuRatio.p90), fmtRatio(r.runCpuRatio.mean)],
    );
  }
  return `### Lifecycle latency (ms, N=${r.n} each, interleaved${s.quick ? ', quick run' : ''}${load(s)})\n\n${table(['what', 'runtime', 'median', 'p90', 'mean'], rows)}`;
}

function operationsMd(s: SuiteRecord<OperationsResult>): string {
  if (!s.result) return failed('operations', s);
  const r = s.result;
  const rows: string[][] = [];
  for (const [op, f] of Object.entries(r.ops)) {
    rows.push([`\`${op}\``, 'ferry', fmt(f.ms.ferry.median), fmt(f.ms.ferry.p90), fmt(f.cpuMs?.ferry.median)]);
    rows.push(['', 'go', fmt(f.ms.go.median), fmt(f.ms.go.p90), fmt(f.cpuMs?.go.median)]);
    rows.push(['', '**ferry/go**', fmtRatio(f.ratio.median), fmtRatio(f.ratio.p90), f.cpuRatio ? fmtRatio(f.cpuRatio.median) : '–']);
  }
  return `### Other operations (ms, N=${r.n} each, interleaved${s.quick ? ', quick run' : ''}${load(s)})\n\n${table(['operation', 'runtime', 'wall median', 'wall p90', 'CPU median (containerd + shim + runc)'], rows)}\n\n\`run -d\`: a new container and daemon; \`exec\`: \`ctr task exec … echo hi\` on it; \`rm -f\`: \`ctr task rm -f\` of it while it runs; \`group join\`: \`ctr run --rm … echo hi\` of a container labelled into the group of an already running one (no new daemon).`;
}

function exitMd(s: SuiteRecord<ExitLatencyResult>): string {
  if (!s.result) return failed('exit latency', s);
  const r = s.result;
  const rows: string[][] = [];
  for (const label of ['ferry', 'go'] as const) {
    const e = r.eventMs[label];
    const x = r.exitedAtMs[label];
    rows.push([label, fmt(e.median, 2), fmt(e.p90, 2), fmt(e.p99, 2), fmt(e.max, 2), fmt(x.median, 2), fmt(x.p99, 2)]);
  }
  rows.push(['**ferry/go**', fmtRatio(ratio(r.eventMs.ferry.median, r.eventMs.go.median)), fmtRatio(ratio(r.eventMs.ferry.p90, r.eventMs.go.p90)), fmtRatio(r.p99Ratio), '', '', '']);
  return `### A process's death → /tasks/exit at containerd (ms, N=${r.n} each${s.quick ? ', quick run' : ''}${load(s)})\n\n${table(['runtime', 'event p50', 'event p90', 'event p99', 'event max', 'exited_at p50', 'exited_at p99'], rows)}\n\nThe bench SIGKILLs an exec'd \`sleep\` and times the /tasks/exit line of \`ctr events\` (event) and the shim's own exited_at (both from the kill).`;
}

function memoryMd(s: SuiteRecord<MemoryResult>): string {
  if (!s.result) return failed('memory', s);
  const r = s.result;
  const rows: string[][] = [];
  r.counts.forEach((n, i) => {
    for (const label of ['ferry', 'go'] as const) {
      const m = r.byRuntime[label][i];
      if (!m) continue;
      rows.push([String(n), label, String(m.daemons), fmt(m.rssMiB), fmt(m.pssMiB), fmt(m.privateMiB), fmt(m.anonMiB), fmt(m.rssPerContainerMiB), fmt(m.pssPerContainerMiB)]);
    }
    rows.push(['', '**ferry/go**', '', fmtRatio(r.rssRatio[i]!), fmtRatio(r.pssRatio[i]!), '', r.anonRatio ? fmtRatio(r.anonRatio[i]!) : '', '', '']);
  });
  if (r.grouped) {
    for (const label of ['ferry', 'go'] as const) {
      const m = r.grouped[label];
      rows.push([`${m.containers}, one group`, label, String(m.daemons), fmt(m.rssMiB), fmt(m.pssMiB), fmt(m.privateMiB), fmt(m.anonMiB), fmt(m.rssPerContainerMiB), fmt(m.pssPerContainerMiB)]);
    }
    rows.push(['', '**ferry/go**', '', '', fmtRatio(r.groupedPssRatio ?? NaN), '', fmtRatio(r.groupedAnonRatio ?? NaN), '', '']);
  }
  return `### Shim memory (MiB, summed over all shim daemons of the runtime; ${r.settleMs} ms settle${s.quick ? ', quick run' : ''}${load(s)})\n\n${table(['containers', 'runtime', 'daemons', 'RSS', 'PSS', 'private', 'anonymous', 'RSS/container', 'PSS/container'], rows)}`;
}

function checkpointMd(s: SuiteRecord<CheckpointResult>): string {
  if (!s.result) return failed('checkpoint', s);
  const r = s.result;
  const rows: string[][] = [];
  for (const w of r.workloads) {
    for (const label of ['ferry', 'go'] as const) {
      const c = w.checkpointMs[label];
      const x = w.restoreMs[label];
      rows.push([`${w.workload} (init RSS ${fmt(w.initRssMiB, 0)} MiB)`, label, fmt(c?.median, 0), fmt(c?.mean, 0), fmt(x?.median, 0), fmt(x?.mean, 0)]);
    }
    rows.push(['', '**ferry/go**', fmtRatio(w.checkpointRatio.median), fmtRatio(w.checkpointRatio.mean), fmtRatio(w.restoreRatio.median), fmtRatio(w.restoreRatio.mean)]);
  }
  const notes = Object.values(r.unavailable).map((u) => `\n\n> ${u}`).join('') + failureNotes(r);
  return `### Checkpoint / restore (ms, N=${r.n} each${s.quick ? ', quick run' : ''}${load(s)})\n\n${table(['workload', 'runtime', 'checkpoint median', 'checkpoint mean', 'restore median', 'restore mean'], rows)}${notes}`;
}

/** One line per runtime and workload that had failed cycles: how many, and the first error line. */
function failureNotes(r: CheckpointResult): string {
  const groups = new Map<string, { count: number; first: string }>();
  for (const f of r.failures ?? []) {
    const key = `${f.runtime}, ${f.workload}`;
    const g = groups.get(key) ?? { count: 0, first: f.error.split('\n').slice(0, 2).join(' | ') };
    g.count++;
    groups.set(key, g);
  }
  return [...groups].map(([k, g]) => `\n\n> failed cycles (${k}): ${g.count} — first: \`${g.first}\``).join('');
}

function stagingMd(s: SuiteRecord<StagingResult>): string {
  if (!s.result) return failed('staging', s);
  const r = s.result;
  const rows = r.formats.map((f) => [f.format, `\`${f.tarCommand ?? 'tar -xf'}\``, fmt(f.archiveMiB), fmt(f.ferryMs.median, 0), fmt(f.gnuTarMs.median, 0), fmt(f.ferryMiBps, 0), fmt(f.gnuTarMiBps, 0), `${fmt(100 * f.gnuTarMs.median / f.ferryMs.median, 0)} %`]);
  return `### Staging a checkpoint archive (${fmt(r.contentMiB, 0)} MiB in ${r.files} files, N=${r.n}, medians${s.quick ? ', quick run' : ''}${load(s)})\n\n${table(['format', 'GNU tar', 'archive MiB', 'stageCheckpointArchive ms', 'GNU tar ms', 'ferry MiB/s', 'tar MiB/s', 'ferry throughput / tar\'s'], rows)}\n\nUnpacked into ${r.destination}; GNU tar: ${r.gnuTar}.`;
}

function machineMd(m: MachineInfo): string {
  return [
    `- date: ${m.date}`,
    `- CPU: ${m.cpuModel}, nproc ${m.nproc}; memory ${m.memTotalMiB} MiB; kernel ${m.kernel}; cgroups ${m.cgroups}`,
    `- node ${m.node}; ${m.containerd}; ${m.runc}; criu ${m.criu}; Go shim: ${m.goShim}`,
    `- ferry build: ${m.ferryBuild}`,
    `- load average at start: ${(m.loadAverage ?? []).join(' / ')}; other containerd processes running: ${m.otherContainerds ?? '?'} (the VM is shared)`,
    `- NODE_EXTRA_CA_CERTS in containerd's (and so the shims') environment: **${m.nodeExtraCaCertsInContainerdEnv ? 'yes' : 'no'}**`,
  ].join('\n');
}

/** Issue 10's goals, each with the figure of this run that it is judged on. */
function goalsMd(v: VariantRecord): string {
  const rows: string[][] = [];
  // The suite the next figures come from: a figure kept from an earlier run says so.
  let from: SuiteRecord<unknown> | undefined;
  const add = (what: string, goal: string, value: number | undefined, limit: number, higherIsBetter = false, unit = '×') => {
    const ok = value === undefined || !Number.isFinite(value) ? '–' : (higherIsBetter ? value >= limit : value <= limit) ? 'yes' : '**no**';
    const shown = value === undefined || !Number.isFinite(value) ? '–' : unit === '×' ? fmtRatio(value) : `${fmt(value, unit === '%' ? 0 : 2)} ${unit}`;
    rows.push([what, goal, from?.carriedFrom && shown !== '–' ? `${shown} (earlier run)` : shown, ok]);
  };
  from = v.lifecycle;
  const l = v.lifecycle?.result;
  add('`ctr run --rm … echo` (own daemon), median', '≤ 1.6×', l?.runRatio.median, 1.6);
  from = v.operations;
  const o = v.operations?.result?.ops;
  add('`ctr run --rm … echo` joining a group\'s daemon, median', '≤ 1.3×', o?.['group join'].ratio.median, 1.3);
  add('`ctr run -d`, median', '≤ 1.6×', o?.['run -d'].ratio.median, 1.6);
  add('`ctr task rm -f`, median', '≤ 1.5×', o?.['rm -f'].ratio.median, 1.5);
  add('`ctr task exec`, median', '≤ 1.1×', o?.exec.ratio.median, 1.1);
  from = v.memory;
  const m = v.memory?.result;
  const idx = (n: number) => m?.counts.indexOf(n) ?? -1;
  add('anonymous memory, one daemon with one container', '≤ 2.0×', idx(1) >= 0 ? m?.anonRatio?.[idx(1)] : undefined, 2.0);
  add(`anonymous memory, ${m?.grouped?.ferry.containers ?? 50} containers in one group's daemon`, '≤ 1.5×', m?.groupedAnonRatio, 1.5);
  for (const n of [10, 50]) add(`PSS, ${n} containers with a daemon each`, '≤ 2.0×', idx(n) >= 0 ? m?.pssRatio[idx(n)] : undefined, 2.0);
  from = v.checkpoint;
  for (const w of v.checkpoint?.result?.workloads ?? []) {
    add(`checkpoint, ${w.workload}, median`, '≤ 1.1×', w.checkpointRatio.median, 1.1);
    add(`restore, ${w.workload}, median`, '≤ 1.2×', w.restoreRatio.median, 1.2);
  }
  from = v.staging;
  for (const f of v.staging?.result?.formats ?? []) {
    const need = f.format === 'tar' ? 80 : 100;
    add(`staging ${f.format}: throughput vs \`${f.tarCommand ?? 'tar -xf'}\``, `≥ ${need} %`, 100 * f.gnuTarMs.median / f.ferryMs.median, need, true, '%');
  }
  from = v.exit;
  add('process death → /tasks/exit, p99 (ferry)', '≤ 10 ms', v.exit?.result?.eventMs.ferry.p99, 10, false, 'ms');
  return `### Issue 10's goals (ferry/go unless said)\n\n${table(['figure', 'goal', 'measured', 'met'], rows)}`;
}

export function renderVariant(v: VariantRecord): string {
  const parts = [`## Results: ${v.description}`, machineMd(v.machine)];
  for (const w of v.warnings ?? []) parts.push(`> **warning:** ${w}`);
  const carried = SUITES.filter((k) => v[k]?.carriedFrom);
  if (carried.length) {
    parts.push(`> **not re-run in this run**, kept from an earlier one (its build, not this one): ${carried.map((k) => `${k} (${v[k]!.carriedFrom})`).join('; ')}`);
  }
  parts.push(goalsMd(v));
  if (v.lifecycle) parts.push(lifecycleMd(v.lifecycle));
  if (v.operations) parts.push(operationsMd(v.operations));
  if (v.exit) parts.push(exitMd(v.exit));
  if (v.memory) parts.push(memoryMd(v.memory));
  if (v.checkpoint) parts.push(checkpointMd(v.checkpoint));
  if (v.staging) parts.push(stagingMd(v.staging));
  return parts.join('\n\n');
}

/** Merges `run` into docs/benchmarks.json and rewrites the variant's section of docs/benchmarks.md. */
export function recordInDocs(repoRoot: string, run: VariantRecord): VariantRecord {
  const jsonPath = path.join(repoRoot, 'docs', 'benchmarks.json');
  let all: Record<string, VariantRecord> = {};
  try {
    all = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as Record<string, VariantRecord>;
  } catch {
    /* first record */
  }
  const previous = all[run.variant];
  const merged: VariantRecord = { ...previous, ...Object.fromEntries(Object.entries(run).filter(([, x]) => x !== undefined)) } as VariantRecord;
  // Suites this run left out keep the earlier run's figures, marked with that run's date and build.
  for (const k of SUITES) {
    const kept = previous?.[k];
    if (run[k] === undefined && kept) {
      (merged as unknown as Record<string, SuiteRecord<unknown>>)[k] = { ...kept, carriedFrom: kept.carriedFrom ?? `run of ${previous.machine.date}, build ${previous.machine.ferryBuild}` };
    }
  }
  all[run.variant] = merged;
  fs.writeFileSync(jsonPath, `${JSON.stringify(all, null, 2)}\n`);

  replaceDocSection(repoRoot, run.variant, renderVariant(merged));
  return merged;
}

/**
 * Rewrites docs/benchmarks.md between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`
 * (every bench records its own section so); without those markers the section is appended,
 * under `heading` when given.
 */
export function replaceDocSection(repoRoot: string, name: string, body: string, heading?: string): void {
  const mdPath = path.join(repoRoot, 'docs', 'benchmarks.md');
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const section = `${begin}\n${body}\n${end}`;
  const md = fs.existsSync(mdPath) ? fs.readFileSync(mdPath, 'utf8') : '# Benchmarks\n';
  const i = md.indexOf(begin);
  const j = md.indexOf(end);
  fs.writeFileSync(mdPath, i >= 0 && j > i
    ? md.slice(0, i) + section + md.slice(j + end.length)
    : `${md.trimEnd()}\n\n${heading ? `${heading}\n\n` : ''}${section}\n`);
}
