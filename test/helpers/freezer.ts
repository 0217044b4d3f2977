// Is a container's cgroup frozen? What CRIU freezes during a dump (and must thaw afterwards) is the
// cgroup freezer: v1 `freezer.state` (THAWED, FREEZING, FROZEN), v2 `cgroup.freeze` (0 or 1).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readProc } from './procfs';

const ROOT = '/sys/fs/cgroup';

/** The freezer state of the cgroup holding `pid`: 'THAWED' | 'FREEZING' | 'FROZEN', or undefined if unknown. */
export function freezerState(pid: number): string | undefined {
  let lines: string[];
  try { lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n'); } catch { return undefined; }
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('freezer'));
  try {
    if (v1) return fs.readFileSync(path.join(ROOT, 'freezer', v1[2]!, 'freezer.state'), 'utf8').trim();
    const v2 = lines.map((l) => l.split(':')).find((f) => f[0] === '0' && f[1] === '');
    if (v2) return fs.readFileSync(path.join(ROOT, v2[2]!, 'cgroup.freeze'), 'utf8').trim() === '1' ? 'FROZEN' : 'THAWED';
  } catch { /* cgroup gone */ }
  return undefined;
}

/** The pid of the process tracing `pid` (CRIU seizes every task it dumps), 0 if none. */
export function tracerPid(pid: number): number {
  try {
    const m = /TracerPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

/** Running normally: exists, not a zombie, cgroup thawed, not stopped and not traced. */
export function runningNormally(pid: number): string | undefined {
  const p = readProc(pid);
  if (!p) return `process ${pid} is gone`;
  if (p.state === 'Z') return `process ${pid} is a zombie`;
  if (p.state === 'T' || p.state === 't') return `process ${pid} is stopped (${p.state})`;
  const fz = freezerState(pid);
  if (fz !== 'THAWED') return `process ${pid}'s cgroup is ${fz ?? 'unreadable'}`;
  const tracer = tracerPid(pid);
  if (tracer) return `process ${pid} is still traced by ${tracer}`;
  return undefined;
}
