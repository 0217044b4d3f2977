// Reads a shim daemon's diagnostics (src/daemon/diagnostics.ts): with FERRY_DIAGNOSTICS_DIR in
// containerd's environment, SIGUSR2 makes the daemon force a GC and write a JSON report.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DiagnosticsReport } from '../../src/daemon/diagnostics';
import { sleep } from './procfs';

const seqs = new Map<number, number>();

/** Signals the daemon and waits for its next report. */
export async function daemonReport(dir: string, pid: number, timeoutMs = 30000): Promise<DiagnosticsReport> {
  const seq = (seqs.get(pid) ?? 0) + 1;
  seqs.set(pid, seq);
  const file = path.join(dir, `ferry-${pid}-${seq}.json`);
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`daemon ${pid} wrote no diagnostics report ${file}`);
    await sleep(50);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as DiagnosticsReport;
}

/** A figures file name for one lane: `<what>-<lane name with safe characters>`. */
export function figureName(what: string, lane: { name: string }): string {
  return `${what}-${lane.name.replace(/[^A-Za-z0-9.]+/g, '_')}`;
}

/** Where a test writes the figures docs/reliability.md quotes (build/reliability/<name>.json). */
export function recordFigures(name: string, figures: unknown): void {
  const dir = path.resolve(__dirname, '..', '..', 'build', 'reliability');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify({ recordedAt: new Date().toISOString(), ...(figures as object) }, null, 2)}\n`);
  console.log(`${name}: ${JSON.stringify(figures)}`);
}
