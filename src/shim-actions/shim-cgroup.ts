// Options.shim_cgroup: the shim daemon is moved into that cgroup by `start`, as the Go shim's
// manager does (cgroupsv2.Load(path).AddProc on a unified host; cgroup1.Load(StaticPath(path))
// .AddProc — every v1 hierarchy that has the path — otherwise). Failing to join fails `start`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors';

export const CGROUP_ROOT = '/sys/fs/cgroup';

export function moveToCgroup(pid: number, cgroupPath: string, root = CGROUP_ROOT): void {
  const rel = path.posix.normalize(`/${cgroupPath}`);
  if (fs.existsSync(path.join(root, 'cgroup.controllers'))) {
    const procs = path.join(root, rel, 'cgroup.procs');
    try {
      fs.writeFileSync(procs, String(pid));
    } catch (err) {
      throw new InvalidArgumentError(`failed to join cgroup ${cgroupPath}: ${(err as Error).message}`);
    }
    return;
  }
  // cgroup v1 (possibly hybrid): one directory per mounted hierarchy; the v2 "unified" one is not a v1 subsystem.
  let joined = 0;
  for (const hierarchy of fs.readdirSync(root)) {
    if (hierarchy === 'unified') continue;
    const dir = path.join(root, hierarchy, rel);
    const procs = path.join(dir, 'cgroup.procs');
    if (!fs.existsSync(procs)) continue;
    try {
      // Co-mounted hierarchies appear under several names (cpu, cpuacct -> cpu,cpuacct): writing twice is harmless.
      fs.writeFileSync(procs, String(pid));
      joined++;
    } catch (err) {
      throw new InvalidArgumentError(`failed to join cgroup ${cgroupPath} (${hierarchy}): ${(err as Error).message}`);
    }
  }
  if (joined === 0) throw new InvalidArgumentError(`failed to load cgroup ${cgroupPath}: cgroup deleted`);
}
