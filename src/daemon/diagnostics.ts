// A diagnostic switch for a running daemon, off unless FERRY_DIAGNOSTICS_DIR names a directory
// (an absolute path; containerd passes its environment on to its shims). Then SIGUSR2 makes the
// daemon force a full garbage collection and write what it holds into that directory:
//   ferry-<pid>-<n>.json          memory (process.memoryUsage after the GC), open fds, containers
//   ferry-<pid>-<n>.heapsnapshot  a V8 heap snapshot, when FERRY_DIAGNOSTICS_HEAP=1
// Each file appears complete (written beside, then renamed), so a reader can poll for it.
// SIGUSR2 because Node reserves SIGUSR1 for its inspector. Without the switch SIGUSR2 keeps
// Node's default (none is installed: a stray SIGUSR2 then ends the daemon, as it always did).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { v8 } from '../loader/on-first-use';
import * as vm from 'node:vm';

export interface DiagnosticsReport {
  pid: number;
  seq: number;
  time: string;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  fds: number;
  /** V8's heap spaces after the GC: name → [size, used] in bytes. */
  spaces: Record<string, [number, number]>;
  /** What the daemon holds, as the caller describes it (e.g. containers, connections). */
  holds: Record<string, number>;
}

export interface DiagnosticsOptions {
  dir: string;
  heapSnapshot: boolean;
  holds: () => Record<string, number>;
  log: (msg: string) => void;
}

/** Reads the switch from the environment; null when it is off (or not an absolute path). */
export function diagnosticsDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env.FERRY_DIAGNOSTICS_DIR ?? '';
  return path.isAbsolute(dir) ? dir : null;
}

/** A function that runs a full GC (V8's gc(), exposed at run time). */
export function forcedGc(): () => void {
  v8().setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function openFds(): number {
  try { return fs.readdirSync('/proc/self/fd').length - 1; } catch { return -1; } // minus readdir's own
}

/** Writes one report (and a heap snapshot if asked); returns the report's path. */
export function writeReport(o: DiagnosticsOptions, gc: () => void, seq: number): string {
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  gc();
  const m = process.memoryUsage();
  const base = path.join(o.dir, `ferry-${process.pid}-${seq}`);
  if (o.heapSnapshot) {
    const tmp = `${base}.heapsnapshot.tmp`;
    v8().writeHeapSnapshot(tmp);
    fs.renameSync(tmp, `${base}.heapsnapshot`);
  }
  const report: DiagnosticsReport = {
    pid: process.pid, seq, time: new Date().toISOString(), rss: m.rss, heapUsed: m.heapUsed,
    heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, fds: openFds(),
    spaces: Object.fromEntries(v8().getHeapSpaceStatistics().map((sp) => [sp.space_name, [sp.space_size, sp.space_used_size]])),
    holds: o.holds(),
  };
  fs.writeFileSync(`${base}.json.tmp`, JSON.stringify(report), { mode: 0o600 });
  fs.renameSync(`${base}.json.tmp`, `${base}.json`);
  return `${base}.json`;
}

/** Installs the SIGUSR2 handler. */
export function installDiagnostics(o: DiagnosticsOptions): void {
  const gc = forcedGc();
  let seq = 0;
  process.on('SIGUSR2', () => {
    try {
      o.log(`diagnostics written: ${writeReport(o, gc, ++seq)}`);
    } catch (err) {
      o.log(`diagnostics failed: ${(err as Error).message}`);
    }
  });
}
