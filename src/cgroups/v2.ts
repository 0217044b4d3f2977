// A container's cgroup on a unified (v2) host: one directory. Stats are read into
// io.containerd.cgroups.v2.Metrics with containerd/cgroups' cgroup2 semantics: "max" reads as
// the largest uint64, a missing optional file reads as zero, PSI is included when the kernel
// has it.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type * as v2 from '../../api/gen/io/containerd/cgroups/v2/metrics';
import { MAX_UINT64, isNotExist, kv, parseKeyValues, parseUint64, readOptional } from './parse';
import { CGROUP_ROOT, readProcCgroup, v2Dir } from './proc';

export class CgroupV2 {
  constructor(readonly dir: string) {}

  static async forPid(pid: number, procRoot = '/proc', root = CGROUP_ROOT): Promise<CgroupV2> {
    return new CgroupV2(v2Dir(await readProcCgroup(pid, procRoot), root));
  }

  async stats(): Promise<v2.Metrics> {
    const d = this.dir;
    const [pids, cpu, memory, memoryEvents, io, hugetlb] = await Promise.all([
      (async (): Promise<v2.PidsStat> => ({ current: await uintFile(path.join(d, 'pids.current')), limit: await uintFile(path.join(d, 'pids.max')) }))(),
      this.cpu(), this.memory(), this.memoryEvents(), this.io(), this.hugetlb(),
    ]);
    // RDMA is left out: no container runtime here sets rdma limits, and the Go shim's reader
    // only reports devices listed in rdma.current/max.
    return { pids, cpu, memory, memoryEvents, io, hugetlb, rdma: undefined };
  }

  /** memory.events counters (oom_kill is what the OOM watcher follows); undefined if absent. */
  async memoryEvents(): Promise<v2.MemoryEvents | undefined> {
    const text = await readOptional(path.join(this.dir, 'memory.events'));
    if (text === undefined) return undefined;
    const e = parseKeyValues(text);
    if (e.size === 0) return undefined;
    return { low: kv(e, 'low'), high: kv(e, 'high'), max: kv(e, 'max'), oom: kv(e, 'oom'), oomKill: kv(e, 'oom_kill') };
  }

  private async cpu(): Promise<v2.CPUStat> {
    const text = await readOptional(path.join(this.dir, 'cpu.stat'));
    const s = text === undefined ? new Map<string, bigint>() : parseKeyValues(text);
    return {
      usageUsec: kv(s, 'usage_usec'), userUsec: kv(s, 'user_usec'), systemUsec: kv(s, 'system_usec'),
      nrPeriods: kv(s, 'nr_periods'), nrThrottled: kv(s, 'nr_throttled'), throttledUsec: kv(s, 'throttled_usec'),
      psi: text === undefined ? undefined : await psiFile(path.join(this.dir, 'cpu.pressure')),
    };
  }

  private async memory(): Promise<v2.MemoryStat> {
    const d = this.dir;
    const text = await readOptional(path.join(d, 'memory.stat'));
    const s = text === undefined ? new Map<string, bigint>() : parseKeyValues(text);
    const u = (f: string) => uintFile(path.join(d, f));
    return {
      anon: kv(s, 'anon'), file: kv(s, 'file'), kernelStack: kv(s, 'kernel_stack'), slab: kv(s, 'slab'),
      sock: kv(s, 'sock'), shmem: kv(s, 'shmem'), fileMapped: kv(s, 'file_mapped'), fileDirty: kv(s, 'file_dirty'),
      fileWriteback: kv(s, 'file_writeback'), anonThp: kv(s, 'anon_thp'), inactiveAnon: kv(s, 'inactive_anon'),
      activeAnon: kv(s, 'active_anon'), inactiveFile: kv(s, 'inactive_file'), activeFile: kv(s, 'active_file'),
      unevictable: kv(s, 'unevictable'), slabReclaimable: kv(s, 'slab_reclaimable'),
      slabUnreclaimable: kv(s, 'slab_unreclaimable'), pgfault: kv(s, 'pgfault'), pgmajfault: kv(s, 'pgmajfault'),
      workingsetRefault: kv(s, 'workingset_refault'), workingsetActivate: kv(s, 'workingset_activate'),
      workingsetNodereclaim: kv(s, 'workingset_nodereclaim'), pgrefill: kv(s, 'pgrefill'), pgscan: kv(s, 'pgscan'),
      pgsteal: kv(s, 'pgsteal'), pgactivate: kv(s, 'pgactivate'), pgdeactivate: kv(s, 'pgdeactivate'),
      pglazyfree: kv(s, 'pglazyfree'), pglazyfreed: kv(s, 'pglazyfreed'), thpFaultAlloc: kv(s, 'thp_fault_alloc'),
      thpCollapseAlloc: kv(s, 'thp_collapse_alloc'),
      usage: await u('memory.current'), usageLimit: await u('memory.max'), maxUsage: await u('memory.peak'),
      swapUsage: await u('memory.swap.current'), swapLimit: await u('memory.swap.max'),
      swapMaxUsage: await u('memory.swap.peak'),
      psi: text === undefined ? undefined : await psiFile(path.join(d, 'memory.pressure')),
    };
  }

  /** io.stat: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… …` per device. */
  private async io(): Promise<v2.IOStat> {
    const text = (await readOptional(path.join(this.dir, 'io.stat'))) ?? '';
    return { usage: parseIoStat(text), psi: await psiFile(path.join(this.dir, 'io.pressure')) };
  }

  /** One entry per page size the controller offers (hugetlb.<size>.current). */
  private async hugetlb(): Promise<v2.HugeTlbStat[]> {
    let names: string[];
    try { names = await fsp.readdir(this.dir); } catch (err) { if (isNotExist(err)) return []; throw err; }
    const sizes = names.map((f) => /^hugetlb\.([^.]+)\.current$/.exec(f)?.[1]).filter((s): s is string => s !== undefined).sort();
    const out: v2.HugeTlbStat[] = [];
    for (const size of sizes) {
      out.push({ pagesize: size, current: await uintFile(path.join(this.dir, `hugetlb.${size}.current`)), max: await uintFile(path.join(this.dir, `hugetlb.${size}.max`)) });
    }
    return out;
  }
}

/** getStatFileContentUint64: "max" is the largest uint64, missing or unreadable is 0. */
async function uintFile(file: string): Promise<bigint> {
  let text: string | undefined;
  try { text = await readOptional(file); } catch { return 0n; }
  if (text === undefined) return 0n;
  if (text.trim() === 'max') return MAX_UINT64;
  try { return parseUint64(text); } catch { return 0n; }
}

export function parseIoStat(text: string): v2.IOEntry[] {
  const out: v2.IOEntry[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length < 2) continue;
    const mm = /^(\d+):(\d+)$/.exec(parts[0]!);
    if (!mm) continue;
    const e: v2.IOEntry = { major: BigInt(mm[1]!), minor: BigInt(mm[2]!), rbytes: 0n, wbytes: 0n, rios: 0n, wios: 0n };
    for (const p of parts.slice(1)) {
      const m = /^(rbytes|wbytes|rios|wios)=(\d+)$/.exec(p);
      if (m) e[m[1] as 'rbytes' | 'wbytes' | 'rios' | 'wios'] = BigInt(m[2]!);
    }
    out.push(e);
  }
  return out;
}

/** A *.pressure file (`some avg10=… avg60=… avg300=… total=…`, `full …`); undefined if absent or unsupported. */
export async function psiFile(file: string): Promise<v2.PSIStats | undefined> {
  let text: string | undefined;
  try { text = await readOptional(file); } catch { return undefined; } // EOPNOTSUPP when PSI is off
  if (text === undefined) return undefined;
  const psi: v2.PSIStats = { some: undefined, full: undefined };
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const data: v2.PSIData = { avg10: 0, avg60: 0, avg300: 0, total: 0n };
    for (const f of fields) {
      const [k, v] = f.split('=');
      if (v === undefined) return undefined;
      if (k === 'total') data.total = parseUint64(v);
      else if (k === 'avg10' || k === 'avg60' || k === 'avg300') {
        const n = Number(v);
        if (!Number.isFinite(n)) return undefined;
        data[k] = n;
      }
    }
    psi[kind] = data;
  }
  return psi;
}
