// Parsers for the value formats of cgroup control files, with containerd/cgroups' semantics
// (so `ctr task metrics` shows the same numbers for ferry as for the Go shim).
import { promises as fsp } from 'node:fs';

export const MAX_UINT64 = 0xffff_ffff_ffff_ffffn;

/**
 * A uint64 as cgroup files write it. Negative values (v1 writes -1 for "unlimited" in some
 * files) become 0, as containerd/cgroups' parseUint does; anything else that is not a number
 * is an error.
 */
export function parseUint64(text: string): bigint {
  const s = text.trim();
  if (/^\d+$/.test(s)) {
    const v = BigInt(s);
    if (v > MAX_UINT64) throw new Error(`value out of range: ${s}`);
    return v;
  }
  if (/^-\d+$/.test(s)) return 0n;
  throw new Error(`invalid number: ${JSON.stringify(s)}`);
}

/**
 * `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat, memory.oom_control).
 * A line that is not exactly two fields is an error, as in containerd/cgroups.
 */
export function parseKeyValues(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2) throw new Error(`invalid key/value line: ${JSON.stringify(line)}`);
    out.set(parts[0]!, parseUint64(parts[1]!));
  }
  return out;
}

/** Reads a file; undefined if it does not exist (a controller or feature the kernel lacks). */
export async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (isNotExist(err)) return undefined;
    throw err;
  }
}

/** ENOENT, and ENODEV, which a read of a file in a cgroup being removed can return. */
export function isNotExist(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENODEV';
}

/** Zero for anything missing: the key/value maps above hold what the kernel printed. */
export function kv(m: Map<string, bigint>, key: string): bigint {
  return m.get(key) ?? 0n;
}
