// CPU time spent by the benchmark's containerd and everything it starts (shims, runc; not the
// containers, which runc moves into cgroups of their own), read from a cgroup the bench puts
// containerd in. Wall-clock figures on a shared, loaded machine swing by 2x; CPU time barely
// moves, so it is what the ratios are decided on when the machine is busy.
//   cgroup v1: a cpuacct group (cpuacct.usage, ns); v2: a child of the unified root (cpu.stat
//   usage_usec, kept even without the cpu controller enabled).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CpuMeter {
  /** CPU time used so far by the processes in the group, in ms. */
  usedMs(): number;
  /** Moves the process out again and removes the group (call after containerd stopped). */
  remove(): void;
}

export function createCpuMeter(pid: number, name: string): CpuMeter | undefined {
  const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
  const root = v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpuacct';
  const dir = path.join(root, name);
  try {
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
  } catch {
    try { fs.rmdirSync(dir); } catch { /* never made */ }
    return undefined;
  }
  const usedMs = v2
    ? () => Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(dir, 'cpu.stat'), 'utf8'))?.[1] ?? NaN) / 1000
    : () => Number(fs.readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8')) / 1e6;
  return {
    usedMs,
    remove() {
      // Whatever is left (nothing, once containerd and its shims are gone) goes back to the root.
      try {
        for (const p of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try { fs.writeFileSync(path.join(root, 'cgroup.procs'), p); } catch { /* exited */ }
        }
        fs.rmdirSync(dir);
      } catch { /* already gone */ }
    },
  };
}
