// What a test's own containerd leaves behind, counted for that containerd only: other engineers'
// containerds and shims run on the same machine, so nothing here is a machine-wide count.
//   - shim daemons: processes whose argv carries this containerd's `-address`;
//   - zombies: unreaped children of this containerd or of its shim daemons;
//   - containers: entries in runc's state dir of this instance's namespace;
//   - mounts under this instance's temp dir (bundles' rootfs, snapshots);
//   - shim sockets named for this containerd (by the ids and groups the test used);
//   - bundle directories of this namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { Containerd } from './containerd';
import { listProcs, mountsUnder, readProc, waitFor } from './procfs';

export interface Leftovers {
  daemons: number[];
  zombies: string[];
  runcContainers: string[];
  mounts: string[];
  sockets: string[];
  bundles: string[];
}

export const RUNC_STATE_ROOT = '/run/containerd/runc';

/** The socket a shim of this containerd uses for a container id or group key. */
export function shimSocketFor(c: Containerd, key: string): string {
  const digest = createHash('sha256').update(path.join(c.address, c.namespace, key)).digest('hex');
  return path.join('/run/containerd/s', digest);
}

function safeReaddir(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}

/** Zombies whose parent is this containerd or one of its shim daemons. */
export function zombiesOf(c: Containerd): string[] {
  const parents = new Set(c.shimDaemons().map((d) => d.pid));
  if (c.pid) parents.add(c.pid);
  return listProcs()
    .filter((p) => p.state === 'Z' && parents.has(p.ppid))
    .map((p) => `zombie ${p.pid} (parent ${p.ppid})`);
}

/** Everything left now (no waiting). `keys` are the container ids and group keys the test used. */
export function leftoversNow(c: Containerd, keys: string[]): Leftovers {
  const bundlesDir = path.join(c.state, 'io.containerd.runtime.v2.task', c.namespace);
  return {
    daemons: c.shimDaemons().map((d) => d.pid),
    zombies: zombiesOf(c),
    runcContainers: safeReaddir(path.join(RUNC_STATE_ROOT, c.namespace)),
    mounts: mountsUnder(c.dir).map((m) => m.mountPoint),
    sockets: keys.map((k) => shimSocketFor(c, k)).filter((s) => fs.existsSync(s)),
    bundles: safeReaddir(bundlesDir),
  };
}

export const isClean = (l: Leftovers): boolean => Object.values(l).every((v) => v.length === 0);

/** Waits (bounded) until nothing is left; returns what is left then (all empty when clean). */
export async function settledLeftovers(c: Containerd, keys: string[], timeoutMs = 20000): Promise<Leftovers> {
  await waitFor(() => isClean(leftoversNow(c, keys)), timeoutMs, 200);
  return leftoversNow(c, keys);
}

/** Open fds of a process (readdir of /proc/PID/fd), or -1 if it is gone. */
export function fdCount(pid: number): number {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return -1; }
}

/** VmRSS of a process in KiB, or -1 if it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : -1;
  } catch { return -1; }
}

/** VmRSS split as the kernel counts it: anonymous, file-backed (e.g. the node binary's pages) and shmem, KiB. */
export function rssSplitKiB(pid: number): { anon: number; file: number; shmem: number } {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? -1);
    return { anon: kib('RssAnon'), file: kib('RssFile'), shmem: kib('RssShmem') };
  } catch { return { anon: -1, file: -1, shmem: -1 }; }
}

/** True when the process exists and is neither a zombie nor gone. */
export const alive = (pid: number): boolean => {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z';
};
