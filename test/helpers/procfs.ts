// Read-only views of /proc used by the e2e tests to check what a shim leaves behind:
// processes (and zombies), mounts, and the shim daemon of a given container.
import * as fs from 'node:fs';

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** One-letter state from /proc/PID/stat: R, S, D, Z (zombie), T, ... */
  state: string;
  argv: string[];
}

/** Reads one process, or undefined if it is gone (or vanished mid-read). */
export function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: the fields after it start at the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '');
    return { pid, state: rest[0] ?? '?', ppid: Number(rest[1]), argv };
  } catch {
    return undefined;
  }
}

export function listProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProc(Number(name));
    if (info) out.push(info);
  }
  return out;
}

/** True when the pid exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z';
}

/** True when the pid exists at all (running or an unreaped zombie). */
export function exists(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

function flagValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${flag}=`));
  return eq?.slice(flag.length + 1);
}

/**
 * Shim daemons serving container `id` for the containerd at `address`: processes whose argv
 * carries `-address ADDRESS` and `-id ID` (as containerd passes them, and as the Go shim
 * keeps them for its daemon) and that are not a `start`/`delete` invocation. The shim daemon
 * is not necessarily containerd's child: the `start` process exits and the daemon is
 * re-parented, and it outlives a containerd restart.
 */
export function findShimDaemons(address: string, id?: string): ProcInfo[] {
  return listProcs().filter((p) => {
    if (flagValue(p.argv, '-address') !== address) return false;
    if (id !== undefined && flagValue(p.argv, '-id') !== id) return false;
    const action = p.argv[p.argv.length - 1];
    return action !== 'start' && action !== 'delete';
  });
}

export interface MountInfo {
  mountPoint: string;
  fsType: string;
}

/** Mounts in this process's mount namespace whose mount point is `dir` or below it. */
export function mountsUnder(dir: string): MountInfo[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const out: MountInfo[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    // mountinfo escapes spaces etc. as octal (\040).
    const mountPoint = (fields[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const sep = fields.indexOf('-');
    if (mountPoint === dir || mountPoint.startsWith(prefix)) out.push({ mountPoint, fsType: fields[sep + 1] ?? '' });
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or the timeout passes (then returns the last value). */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value || Date.now() >= deadline) return value;
    await sleep(intervalMs);
  }
}

/** True when process `pid` has an open file whose path starts with `prefix` (a deleted one too). */
export function fdsUnder(pid: number, prefix: string): boolean {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // gone, or not ours to read
  }
  return fds.some((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(prefix);
    } catch {
      return false;
    }
  });
}
