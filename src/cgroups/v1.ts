// A container's cgroup on a v1 (legacy or hybrid) host: one directory per controller. Stats
// are read into io.containerd.cgroups.v1.Metrics the way containerd/cgroups' cgroup1 package
// does with IgnoreNotExist (what the Go shim's Stats uses): a controller whose files are
// missing contributes nothing instead of failing the whole call.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type * as v1 from '../../api/gen/io/containerd/cgroups/v1/metrics';
import { isNotExist, kv, parseKeyValues, parseUint64, readOptional } from './parse';
import { parseCgroupV1Mounts, readProcCgroup, v1ControllerDirs } from './proc';

/** USER_HZ: cpuacct.stat counts in clock ticks; the Go code hard-codes 100 on Linux as well. */
const CLOCK_TICKS = 100n;
const NS_PER_SECOND = 1_000_000_000n;

export class CgroupV1 {
  /** controller name ('memory', 'cpu', 'cpuacct', 'pids', 'blkio', 'hugetlb', ...) -> directory */
  constructor(readonly dirs: ReadonlyMap<string, string>, private readonly procRoot = '/proc') {}

  /** The cgroups of `pid` as the kernel reports them. */
  static async forPid(pid: number, procRoot = '/proc'): Promise<CgroupV1> {
    const entries = await readProcCgroup(pid, procRoot);
    const mounts = parseCgroupV1Mounts(await fsp.readFile(path.join(procRoot, 'self', 'mountinfo'), 'utf8'));
    return new CgroupV1(v1ControllerDirs(entries, mounts), procRoot);
  }

  dir(controller: string): string | undefined { return this.dirs.get(controller); }

  async stats(): Promise<v1.Metrics> {
    const m: v1.Metrics = {
      hugetlb: [], pids: undefined,
      cpu: { usage: { total: 0n, kernel: 0n, user: 0n, perCpu: [] }, throttling: { periods: 0n, throttledPeriods: 0n, throttledTime: 0n } },
      memory: undefined, blkio: undefined, rdma: undefined, network: [], cgroupStats: undefined, memoryOomControl: undefined,
    };
    // Each controller is read on its own; a missing file (the controller is not mounted, or the
    // cgroup went away) leaves that part empty, as IgnoreNotExist does.
    await Promise.all([
      this.ignoreNotExist('pids', (d) => this.readPids(d, m)),
      this.ignoreNotExist('cpu', (d) => this.readCpu(d, m)),
      this.ignoreNotExist('cpuacct', (d) => this.readCpuacct(d, m)),
      this.ignoreNotExist('memory', (d) => this.readMemory(d, m)),
      this.ignoreNotExist('blkio', (d) => this.readBlkio(d, m)),
      this.ignoreNotExist('hugetlb', (d) => this.readHugetlb(d, m)),
    ]);
    return m;
  }

  private async ignoreNotExist(controller: string, read: (dir: string) => Promise<void>): Promise<void> {
    const d = this.dirs.get(controller);
    if (!d) return;
    try {
      await read(d);
    } catch (err) {
      if (!isNotExist(err)) throw err;
    }
  }

  private async readPids(d: string, m: v1.Metrics): Promise<void> {
    const current = parseUint64(await fsp.readFile(path.join(d, 'pids.current'), 'utf8'));
    m.pids = { current, limit: readUintOrMax(await fsp.readFile(path.join(d, 'pids.max'), 'utf8')) };
  }

  private async readCpu(d: string, m: v1.Metrics): Promise<void> {
    const s = parseKeyValues(await fsp.readFile(path.join(d, 'cpu.stat'), 'utf8'));
    m.cpu!.throttling = { periods: kv(s, 'nr_periods'), throttledPeriods: kv(s, 'nr_throttled'), throttledTime: kv(s, 'throttled_time') };
  }

  private async readCpuacct(d: string, m: v1.Metrics): Promise<void> {
    const stat = parseKeyValues(await fsp.readFile(path.join(d, 'cpuacct.stat'), 'utf8'));
    for (const k of ['user', 'system']) {
      if (!stat.has(k)) throw new Error(`expected field "${k}" in ${path.join(d, 'cpuacct.stat')}`);
    }
    const total = parseUint64(await fsp.readFile(path.join(d, 'cpuacct.usage'), 'utf8'));
    const perCpu = (await fsp.readFile(path.join(d, 'cpuacct.usage_percpu'), 'utf8')).trim().split(/\s+/).filter(Boolean).map(parseUint64);
    m.cpu!.usage = {
      total, perCpu,
      user: (kv(stat, 'user') * NS_PER_SECOND) / CLOCK_TICKS,
      kernel: (kv(stat, 'system') * NS_PER_SECOND) / CLOCK_TICKS,
    };
  }

  private async readMemory(d: string, m: v1.Metrics): Promise<void> {
    const raw = parseKeyValues(await fsp.readFile(path.join(d, 'memory.stat'), 'utf8'));
    const entry = async (prefix: string): Promise<v1.MemoryEntry> => ({
      usage: await readUintFile(path.join(d, `${prefix}.usage_in_bytes`)),
      max: await readUintFile(path.join(d, `${prefix}.max_usage_in_bytes`)),
      failcnt: await readUintFile(path.join(d, `${prefix}.failcnt`)),
      limit: await readUintFile(path.join(d, `${prefix}.limit_in_bytes`)),
    });
    const empty: v1.MemoryEntry = { usage: 0n, max: 0n, failcnt: 0n, limit: 0n };
    // memsw needs swap accounting and kmem a kernel that still has it: optional, like the Go
    // shim's OptionalSwap; plain memory.* is not.
    const optional = async (prefix: string) => (await fileExists(path.join(d, `${prefix}.usage_in_bytes`))) ? entry(prefix) : empty;
    m.memory = {
      cache: kv(raw, 'cache'), rss: kv(raw, 'rss'), rssHuge: kv(raw, 'rss_huge'), mappedFile: kv(raw, 'mapped_file'),
      dirty: kv(raw, 'dirty'), writeback: kv(raw, 'writeback'), pgPgIn: kv(raw, 'pgpgin'), pgPgOut: kv(raw, 'pgpgout'),
      pgFault: kv(raw, 'pgfault'), pgMajFault: kv(raw, 'pgmajfault'), inactiveAnon: kv(raw, 'inactive_anon'),
      activeAnon: kv(raw, 'active_anon'), inactiveFile: kv(raw, 'inactive_file'), activeFile: kv(raw, 'active_file'),
      unevictable: kv(raw, 'unevictable'), hierarchicalMemoryLimit: kv(raw, 'hierarchical_memory_limit'),
      hierarchicalSwapLimit: kv(raw, 'hierarchical_memsw_limit'), totalCache: kv(raw, 'total_cache'),
      totalRss: kv(raw, 'total_rss'), totalRssHuge: kv(raw, 'total_rss_huge'), totalMappedFile: kv(raw, 'total_mapped_file'),
      totalDirty: kv(raw, 'total_dirty'), totalWriteback: kv(raw, 'total_writeback'), totalPgPgIn: kv(raw, 'total_pgpgin'),
      totalPgPgOut: kv(raw, 'total_pgpgout'), totalPgFault: kv(raw, 'total_pgfault'), totalPgMajFault: kv(raw, 'total_pgmajfault'),
      totalInactiveAnon: kv(raw, 'total_inactive_anon'), totalActiveAnon: kv(raw, 'total_active_anon'),
      totalInactiveFile: kv(raw, 'total_inactive_file'), totalActiveFile: kv(raw, 'total_active_file'),
      totalUnevictable: kv(raw, 'total_unevictable'),
      usage: empty, swap: empty, kernel: empty, kernelTcp: empty,
    };
    const oom = parseKeyValues(await fsp.readFile(path.join(d, 'memory.oom_control'), 'utf8'));
    m.memoryOomControl = { oomKillDisable: kv(oom, 'oom_kill_disable'), underOom: kv(oom, 'under_oom'), oomKill: kv(oom, 'oom_kill') };
    m.memory.usage = await entry('memory');
    m.memory.swap = await optional('memory.memsw');
    m.memory.kernel = await optional('memory.kmem');
    m.memory.kernelTcp = await optional('memory.kmem.tcp');
  }

  /**
   * blkio: the CFQ `*_recursive` files when the kernel has them and they hold entries, else the
   * throttle.* files (what every blk-mq kernel offers), as containerd/cgroups does.
   */
  private async readBlkio(d: string, m: v1.Metrics): Promise<void> {
    const b: v1.BlkIOStat = {
      ioServiceBytesRecursive: [], ioServicedRecursive: [], ioQueuedRecursive: [], ioServiceTimeRecursive: [],
      ioWaitTimeRecursive: [], ioMergedRecursive: [], ioTimeRecursive: [], sectorsRecursive: [],
    };
    m.blkio = b;
    const devices = parsePartitions((await readOptional(path.join(this.procRoot, 'partitions'))) ?? '');
    const read = async (name: string, into: v1.BlkIOEntry[]) => {
      into.push(...parseBlkioEntries(await fsp.readFile(path.join(d, `blkio.${name}`), 'utf8'), devices));
    };
    if (await fileExists(path.join(d, 'blkio.io_serviced_recursive'))) {
      await read('sectors_recursive', b.sectorsRecursive);
      await read('io_service_bytes_recursive', b.ioServiceBytesRecursive);
      await read('io_serviced_recursive', b.ioServicedRecursive);
      await read('io_queued_recursive', b.ioQueuedRecursive);
      await read('io_service_time_recursive', b.ioServiceTimeRecursive);
      await read('io_wait_time_recursive', b.ioWaitTimeRecursive);
      await read('io_merged_recursive', b.ioMergedRecursive);
      await read('time_recursive', b.ioTimeRecursive);
      if (Object.values(b).some((list: v1.BlkIOEntry[]) => list.length > 0)) return;
    }
    await read('throttle.io_serviced', b.ioServicedRecursive);
    await read('throttle.io_service_bytes', b.ioServiceBytesRecursive);
  }

  /** One entry per huge page size the controller offers (hugetlb.<size>.usage_in_bytes). */
  private async readHugetlb(d: string, m: v1.Metrics): Promise<void> {
    const sizes = (await fsp.readdir(d))
      .map((f) => /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .sort(comparePageSizes);
    for (const size of sizes) {
      m.hugetlb.push({
        pagesize: size,
        usage: await readUintFile(path.join(d, `hugetlb.${size}.usage_in_bytes`)),
        max: await readUintFile(path.join(d, `hugetlb.${size}.max_usage_in_bytes`)),
        failcnt: await readUintFile(path.join(d, `hugetlb.${size}.failcnt`)),
      });
    }
  }
}

/** v1's readUint: "max" reads as 0 (containerd/cgroups keeps that for compatibility). */
function readUintOrMax(text: string): bigint {
  return text.trim() === 'max' ? 0n : parseUint64(text);
}

async function readUintFile(file: string): Promise<bigint> {
  return readUintOrMax(await fsp.readFile(file, 'utf8'));
}

async function fileExists(file: string): Promise<boolean> {
  try { await fsp.lstat(file); return true; } catch { return false; }
}

/** /proc/partitions: `major minor #blocks name` -> "major:minor" -> /dev/name. */
export function parsePartitions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length === 4 && /^\d+$/.test(f[0]!) && /^\d+$/.test(f[1]!)) out.set(`${f[0]}:${f[1]}`, `/dev/${f[3]}`);
  }
  return out;
}

/** blkio stat lines: `MAJ:MIN [Op] value`, plus a `Total value` line that is skipped. */
export function parseBlkioEntries(text: string, devices: ReadonlyMap<string, string>): v1.BlkIOEntry[] {
  const out: v1.BlkIOEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.trim().split(/[\s:]+/);
    if (f.length === 2 && f[0] === 'Total') continue;
    if (f.length < 3) throw new Error(`invalid blkio line: ${JSON.stringify(line)}`);
    const [maj, min] = [f[0]!, f[1]!];
    const op = f.length === 4 ? f[2]! : '';
    out.push({ major: parseUint64(maj), minor: parseUint64(min), op, value: parseUint64(f[f.length === 4 ? 3 : 2]!), device: devices.get(`${maj}:${min}`) ?? '' });
  }
  return out;
}

const UNIT: Record<string, number> = { B: 0, KB: 1, MB: 2, GB: 3, TB: 4, PB: 5 };
function comparePageSizes(a: string, b: string): number {
  const bytes = (s: string) => {
    const m = /^(\d+)([KMGTP]?B)$/.exec(s);
    return m ? Number(m[1]) * 1024 ** (UNIT[m[2]!] ?? 0) : Number.MAX_SAFE_INTEGER;
  };
  return bytes(a) - bytes(b);
}
