// Renders results as markdown tables and records them: docs/benchmarks.json (all variants,
// merged so a partial re-run updates only its suites) and the generated section of
// docs/benchmarks.md between `<!-- bench:VARIANT:begin -->` and `<!-- bench:VARIANT:end -->`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointResult } from './checkpoint';
import type { LifecycleResult } from './lifecycle';
import type { MachineInfo } from './machine';
import type { MemoryResult } from './memory';
import type { StagingResult } from './staging';
import { fmt, fmtRatio } from './stats';

export interface SuiteRecord<T> {
  ranAt: string;
  quick: boolean;
  result?: T;
  error?: string;
}

export interface VariantRecord {
  variant: string;
  description: string;
  machine: MachineInfo;
  warnings?: string[];
  lifecycle?: SuiteRecord<LifecycleResult>;
  memory?: SuiteRecord<MemoryResult>;
  checkpoint?: SuiteRecord<CheckpointResult>;
  staging?: SuiteRecord<StagingResult>;
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
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
  return `### Lifecycle latency (ms, N=${r.n} each, interleaved${s.quick ? ', quick run' : ''})\n\n${table(['what', 'runtime', 'median', 'p90', 'mean'], rows)}`;
}

function memoryMd(s: SuiteRecord<MemoryResult>): string {
  if (!s.result) return failed('memory', s);
  const r = s.result;
  const rows: string[][] = [];
  r.counts.forEach((n, i) => {
    for (const label of ['ferry', 'go'] as const) {
      const m = r.byRuntime[label][i];
      if (!m) continue;
      rows.push([String(n), label, String(m.daemons), fmt(m.rssMiB), fmt(m.pssMiB), fmt(m.privateMiB), fmt(m.rssPerContainerMiB), fmt(m.pssPerContainerMiB)]);
    }
    rows.push(['', '**ferry/go**', '', fmtRatio(r.rssRatio[i]!), fmtRatio(r.pssRatio[i]!), '', '', '']);
  });
  return `### Shim memory (MiB, summed over all shim daemons of the runtime; ${r.settleMs} ms settle${s.quick ? ', quick run' : ''})\n\n${table(['containers', 'runtime', 'daemons', 'RSS', 'PSS', 'private', 'RSS/container', 'PSS/container'], rows)}`;
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
  return `### Checkpoint / restore (ms, N=${r.n} each${s.quick ? ', quick run' : ''})\n\n${table(['workload', 'runtime', 'checkpoint median', 'checkpoint mean', 'restore median', 'restore mean'], rows)}${notes}`;
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
  const rows = r.formats.map((f) => [f.format, fmt(f.archiveMiB), fmt(f.ferryMs.median, 0), fmt(f.gnuTarMs.median, 0), fmt(f.ferryMiBps, 0), fmt(f.gnuTarMiBps, 0), fmtRatio(f.ratio)]);
  return `### Staging a checkpoint archive (${fmt(r.contentMiB, 0)} MiB in ${r.files} files, N=${r.n}, medians${s.quick ? ', quick run' : ''})\n\n${table(['format', 'archive MiB', 'stageCheckpointArchive ms', 'GNU tar -xf ms', 'ferry MiB/s', 'tar MiB/s', 'ferry/tar time'], rows)}\n\nUnpacked into ${r.destination}; GNU tar: ${r.gnuTar}.`;
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

export function renderVariant(v: VariantRecord): string {
  const parts = [`## Results: ${v.description}`, machineMd(v.machine)];
  for (const w of v.warnings ?? []) parts.push(`> **warning:** ${w}`);
  if (v.lifecycle) parts.push(lifecycleMd(v.lifecycle));
  if (v.memory) parts.push(memoryMd(v.memory));
  if (v.checkpoint) parts.push(checkpointMd(v.checkpoint));
  if (v.staging) parts.push(stagingMd(v.staging));
  return parts.join('\n\n');
}

/** Merges `run` into docs/benchmarks.json and rewrites the variant's section of docs/benchmarks.md. */
export function recordInDocs(repoRoot: string, run: VariantRecord): VariantRecord {
  const jsonPath = path.join(repoRoot, 'docs', 'benchmarks.json');
  const mdPath = path.join(repoRoot, 'docs', 'benchmarks.md');
  let all: Record<string, VariantRecord> = {};
  try {
    all = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as Record<string, VariantRecord>;
  } catch {
    /* first record */
  }
  const merged: VariantRecord = { ...all[run.variant], ...Object.fromEntries(Object.entries(run).filter(([, x]) => x !== undefined)) } as VariantRecord;
  all[run.variant] = merged;
  fs.writeFileSync(jsonPath, `${JSON.stringify(all, null, 2)}\n`);

  const begin = `<!-- bench:${run.variant}:begin -->`;
  const end = `<!-- bench:${run.variant}:end -->`;
  const section = `${begin}\n${renderVariant(merged)}\n${end}`;
  let md = fs.existsSync(mdPath) ? fs.readFileSync(mdPath, 'utf8') : '# Benchmarks\n';
  const i = md.indexOf(begin);
  const j = md.indexOf(end);
  md = i >= 0 && j > i ? md.slice(0, i) + section + md.slice(j + end.length) : `${md.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(mdPath, md);
  return merged;
}
