// Mounting the rootfs containerd hands over in Create (`containerd.types.Mount` list) at
// `<bundle>/rootfs`, and unmounting it again. Option parsing follows containerd's
// mount_linux.go: known words become MS_* flags, propagation words are applied in a second
// mount call, everything else is filesystem data (e.g. overlay's lowerdir=...).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MNT_DETACH, MS, mount, umount2, umount2Async } from './native';

export interface MountSpec { type: string; source: string; target?: string; options: string[] }

interface ParsedOptions { flags: number; propagation: number; data: string }

export function parseMountOptions(options: string[]): ParsedOptions {
  const set: Record<string, number> = {
    bind: MS.BIND, rbind: MS.BIND | MS.REC, ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV,
    noexec: MS.NOEXEC, sync: MS.SYNCHRONOUS, dirsync: MS.DIRSYNC, remount: MS.REMOUNT,
    noatime: MS.NOATIME, nodiratime: MS.NODIRATIME, relatime: MS.RELATIME, strictatime: MS.STRICTATIME,
  };
  const clear: Record<string, number> = {
    rw: MS.RDONLY, suid: MS.NOSUID, dev: MS.NODEV, exec: MS.NOEXEC, async: MS.SYNCHRONOUS,
    atime: MS.NOATIME, diratime: MS.NODIRATIME, norelatime: MS.RELATIME, nostrictatime: MS.STRICTATIME,
  };
  const propagation: Record<string, number> = {
    private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC, shared: MS.SHARED, rshared: MS.SHARED | MS.REC,
    slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC,
  };
  let flags = 0;
  let prop = 0;
  const data: string[] = [];
  for (const o of options) {
    if (o === 'defaults') continue;
    if (o in set) flags |= set[o];
    else if (o in clear) flags &= ~clear[o];
    else if (o in propagation) prop |= propagation[o];
    else data.push(o);
  }
  return { flags, propagation: prop, data: data.join(',') };
}

/** Mounts `m` on `target` (which must exist). */
export function mountOne(m: MountSpec, target: string): void {
  const { flags, propagation, data } = parseMountOptions(m.options);
  mount(m.source, target, m.type, flags, data);
  // A read-only bind mount needs a remount: the kernel ignores MS_RDONLY on the first bind.
  if (flags & MS.BIND && flags & MS.RDONLY) {
    mount('', target, '', flags | MS.REMOUNT, '');
  }
  if (propagation) mount('', target, '', propagation, '');
}

/** Mounts every rootfs mount in order on `target`. On failure, unmounts what was mounted. */
export function mountAll(mounts: MountSpec[], target: string): void {
  let done = 0;
  try {
    for (const m of mounts) {
      mountOne(m, target);
      done++;
    }
  } catch (err) {
    for (let i = 0; i < done; i++) unmountAll(target);
    throw err;
  }
}

/** umount2's answer once nothing (more) is mounted on the path, or the path is missing. */
function nothingMounted(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'ENOENT';
}

/** At most this many mounts stacked on one target are unmounted. */
const MAX_STACKED = 64;

/** Unmounts everything stacked on `target`, lazily; a missing or unmounted path is fine. */
export function unmountAll(target: string): void {
  for (let i = 0; i < MAX_STACKED; i++) {
    try {
      umount2(target, MNT_DETACH);
    } catch (err) {
      if (nothingMounted(err)) return;
      throw err;
    }
  }
}

/** unmountAll, each umount2 on the threadpool: for Delete, where the event loop serves other calls meanwhile. */
export async function unmountAllAsync(target: string): Promise<void> {
  for (let i = 0; i < MAX_STACKED; i++) {
    try {
      await umount2Async(target, MNT_DETACH);
    } catch (err) {
      if (nothingMounted(err)) return;
      throw err;
    }
  }
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function mountPointsUnder(dir: string, mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const root = path.resolve(dir);
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mp = unescapeMountPath(field);
    if (mp === root || mp.startsWith(`${root}/`)) out.push(mp);
  }
  return [...new Set(out)].sort((a, b) => b.length - a.length);
}
