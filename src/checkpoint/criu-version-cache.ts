// What `criu --version` printed, remembered per binary so that not every checkpoint and restore
// spawns it: each container has a daemon of its own, and the spawn (fork of the ~50 MB node
// process, exec, CRIU's start) cost 7–20 ms on the critical path of every Checkpoint and Create
// from a checkpoint (docs/benchmarks.md, round 3). An entry counts only for the very file it
// was taken from: same path, device, inode, size, mtime and ctime (in nanoseconds). Replacing
// or rewriting the binary changes its inode or ctime, and nobody can set a ctime back, so a
// changed CRIU is always asked again. Kept in the daemon's memory and, for the next daemons, in
// one small root-only file per binary under /run/ferry/criu-version (tmpfs: gone at boot). A
// cache that cannot be read or written is no error: CRIU is then simply asked.
import { closeSync, constants as fsc, fstatSync, openSync, promises as fsp, readFileSync, type BigIntStats } from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_CRIU_VERSION_CACHE_DIR = '/run/ferry/criu-version';

/** An entry is a few hundred bytes; anything larger is not one of ours. */
const MAX_ENTRY_BYTES = 4096;

interface Entry {
  path: string;
  identity: string;
  version: string;
}

const inMemory = new Map<string, Entry>();

/** The binary's identity: what must be unchanged for a remembered version to hold. */
export function binaryIdentity(st: BigIntStats): string {
  return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(':');
}

/** Longest binary path with an entry on disk (its name must fit NAME_MAX); longer ones are asked each time. */
const MAX_NAMED_PATH = 180;

/**
 * The entry's file: the path in base64url, a name that is one path component and unique per
 * path (node:crypto's hash would cost every daemon its load). Undefined for a longer path.
 */
function entryFile(dir: string, binary: string): string | undefined {
  const name = Buffer.from(binary).toString('base64url');
  return name.length <= MAX_NAMED_PATH ? path.join(dir, `${name}.json`) : undefined;
}

function isEntry(v: unknown): v is Entry {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return typeof o.path === 'string' && typeof o.identity === 'string' && typeof o.version === 'string' && /^\d+\.\d+\.\d+$/.test(o.version);
}

/** Synchronous: a few hundred bytes read on every restore's critical path (format/open-regular.ts). */
function readEntryFile(file: string): unknown {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_ENTRY_BYTES || st.uid !== process.getuid?.()) return undefined;
    return JSON.parse(readFileSync(fd, 'utf8'));
  } finally {
    closeSync(fd);
  }
}

/** The version remembered for `binary` with this identity, or undefined. */
export async function cachedCriuVersion(binary: string, identity: string, dir = DEFAULT_CRIU_VERSION_CACHE_DIR): Promise<string | undefined> {
  const mem = inMemory.get(binary);
  if (mem && mem.identity === identity) return mem.version;
  const file = entryFile(dir, binary);
  if (!file) return undefined;
  try {
    const v = readEntryFile(file);
    if (isEntry(v) && v.path === binary && v.identity === identity) {
      inMemory.set(binary, v);
      return v.version;
    }
  } catch {
    /* no entry yet, or one we cannot read: ask CRIU */
  }
  return undefined;
}

/** Remembers `version` for `binary` with this identity (in memory, and on disk where it can). */
export async function rememberCriuVersion(binary: string, identity: string, version: string, dir = DEFAULT_CRIU_VERSION_CACHE_DIR): Promise<void> {
  const entry: Entry = { path: binary, identity, version };
  inMemory.set(binary, entry);
  const file = entryFile(dir, binary);
  if (!file) return;
  try {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    // Written whole, then renamed: a reader sees the old entry or the new one, never half.
    const tmp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(entry), { mode: 0o600, flag: fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW });
    await fsp.rename(tmp, file);
    await forgetRemovedBinaries(dir);
  } catch {
    /* the next daemon asks CRIU again */
  }
}

/**
 * Drops the entries of binaries that no longer exist (a test's CRIU in a temp dir, an
 * uninstalled one), so the directory does not grow with every path ever asked. Runs only when
 * an entry was written, i.e. when CRIU was asked anyway.
 */
async function forgetRemovedBinaries(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    const m = /^([A-Za-z0-9_-]+)\.json$/.exec(name);
    const binary = m ? Buffer.from(m[1]!, 'base64url').toString() : undefined;
    if (binary && path.isAbsolute(binary) && !(await fsp.lstat(binary).then(() => true, () => false))) {
      await fsp.rm(path.join(dir, name), { force: true });
    }
  }
}

/** Forgets the in-memory entries (tests). */
export function forgetCriuVersions(): void {
  inMemory.clear();
}
