// Where a process's cgroups are: /proc/<pid>/cgroup (which hierarchy, which path) and
// /proc/self/mountinfo (where each v1 hierarchy is mounted), and which cgroup mode the host
// runs. The Go shim finds a container's cgroup the same way (cgroup1.PidPath /
// cgroup2.PidGroupPath of the init pid, right after `runc create`): it works for the
// cgroupfs and systemd drivers alike and needs no knowledge of how runc turned
// linux.cgroupsPath into a directory.
import { promises as fsp, statfsSync } from 'node:fs';
import * as path from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_SUPER_MAGIC = 0x63677270;

export type CgroupMode = 'legacy' | 'hybrid' | 'unified';

/**
 * containerd's cgroups.Mode(): unified if /sys/fs/cgroup itself is cgroup2, hybrid if only
 * /sys/fs/cgroup/unified is, else legacy. Like the Go shim, ferry uses v2 only when unified
 * (a hybrid host's v2 tree holds no controllers).
 */
export function cgroupMode(root = CGROUP_ROOT): CgroupMode {
  const isCgroup2 = (p: string): boolean => {
    try { return statfsSync(p).type === CGROUP2_SUPER_MAGIC; } catch { return false; }
  };
  if (isCgroup2(root)) return 'unified';
  return isCgroup2(path.join(root, 'unified')) ? 'hybrid' : 'legacy';
}

export interface ProcCgroupEntry {
  hierarchyId: number;
  /** Controllers of a v1 hierarchy (`name=systemd` included as is); empty for the v2 line. */
  controllers: string[];
  /** The cgroup path relative to the hierarchy's root as the reader sees it. */
  path: string;
}

/** Parses /proc/<pid>/cgroup (`id:controllers:path` lines; paths may contain ':'). */
export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  const out: ProcCgroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) throw new Error(`invalid /proc/<pid>/cgroup line: ${JSON.stringify(line)}`);
    const list = line.slice(first + 1, second);
    out.push({ hierarchyId: Number(line.slice(0, first)), controllers: list ? list.split(',') : [], path: line.slice(second + 1) });
  }
  return out;
}

export interface CgroupV1Mount {
  mountPoint: string;
  /** The hierarchy path mounted there (not "/" inside a container with a cgroup namespace). */
  root: string;
  controllers: string[];
}

/** The cgroup (v1) mounts in /proc/self/mountinfo, with the controllers from their super options. */
export function parseCgroupV1Mounts(mountinfo: string): CgroupV1Mount[] {
  const out: CgroupV1Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fsType, , superOptions = ''] = line.slice(sep + 3).split(' ');
    if (fsType !== 'cgroup' || left.length < 5) continue;
    const controllers = superOptions.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent=') && o !== 'clone_children' && o !== 'noprefix' && o !== 'xattr' && o !== 'cpuset_v2_mode');
    out.push({ mountPoint: unescapeMountinfo(left[4]!), root: unescapeMountinfo(left[3]!), controllers });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The directory of each v1 controller for a process: mount point + (cgroup path relative to
 * the mount's root). Controllers without a mount are left out.
 */
export function v1ControllerDirs(entries: ProcCgroupEntry[], mounts: CgroupV1Mount[]): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const e of entries) {
    if (e.controllers.length === 0) continue;
    const mount = mounts.find((m) => e.controllers.every((c) => m.controllers.includes(c)));
    if (!mount) continue;
    const rel = path.posix.relative(mount.root, e.path);
    if (rel.startsWith('..')) continue; // not visible from our mount
    for (const c of e.controllers) dirs.set(c, path.join(mount.mountPoint, rel));
  }
  return dirs;
}

/** The v2 directory of a process: the `0::` line under the unified mount. */
export function v2Dir(entries: ProcCgroupEntry[], root = CGROUP_ROOT): string {
  const e = entries.find((x) => x.hierarchyId === 0 && x.controllers.length === 0);
  if (!e) throw new Error('no cgroup v2 entry (0::) for the process');
  return path.join(root, e.path);
}

export async function readProcCgroup(pid: number, procRoot = '/proc'): Promise<ProcCgroupEntry[]> {
  return parseProcCgroup(await fsp.readFile(path.join(procRoot, String(pid), 'cgroup'), 'utf8'));
}
