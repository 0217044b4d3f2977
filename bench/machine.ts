// Describes the machine a benchmark ran on, so recorded figures can be judged (and compared
// only with figures from a like machine).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, type Containerd } from '../test/helpers/containerd';

export interface MachineInfo {
  date: string;
  hostname: string;
  cpuModel: string;
  nproc: number;
  memTotalMiB: number;
  kernel: string;
  node: string;
  containerd: string;
  runc: string;
  criu: string;
  goShim: string;
  /** containerd passes its environment to shims: with this set every Node start costs ~85 ms more (NOTES.md). */
  nodeExtraCaCertsInContainerdEnv: boolean;
  cgroups: string;
  /** The ferry build measured: HEAD, whether the tree had local changes, dist/shim-daemon.js's mtime. */
  ferryBuild: string;
  /** 1/5/15-minute load averages when the run began: this VM is shared, other work skews figures. */
  loadAverage: number[];
  /** containerd processes on the machine besides ours (other engineers' e2e runs). */
  otherContainerds: number;
}

/** A tool's version output on one line (the Go shim prints several). */
function versionLine(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
    return out.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 3).join(' ');
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

function ferryBuild(): string {
  const head = versionLine('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
  let dirty = '';
  try {
    dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() ? ' + local changes' : '';
  } catch {
    /* not a git checkout */
  }
  let built = 'missing';
  try {
    built = fs.statSync(path.join(REPO_ROOT, 'dist', 'shim-daemon.js')).mtime.toISOString();
  } catch {
    /* reported as missing */
  }
  return `${head}${dirty}; dist/shim-daemon.js built ${built}`;
}

function countOtherContainerds(ours: number | undefined): number {
  let n = 0;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === ours) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim() === 'containerd') n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

export function machineInfo(c: Containerd, nodeExtraCaCerts: boolean): MachineInfo {
  const cgroupV2Only = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    nproc: os.availableParallelism(),
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    kernel: os.release(),
    node: process.version,
    containerd: versionLine(c.version === '2.1' ? c.ctrPath.replace(/ctr$/, 'containerd') : 'containerd', ['--version']),
    runc: versionLine('runc', ['--version']),
    criu: versionLine('criu', ['--version']),
    goShim: versionLine('containerd-shim-runc-v2', ['-v']),
    nodeExtraCaCertsInContainerdEnv: nodeExtraCaCerts,
    cgroups: cgroupV2Only ? 'v2' : 'v1 (hybrid)',
    ferryBuild: ferryBuild(),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    otherContainerds: countOtherContainerds(c.pid),
  };
}
