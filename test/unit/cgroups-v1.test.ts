// cgroup v1 discovery, stats and OOM notification on a fake tree laid out as the kernel does:
// /proc/<pid>/cgroup, /proc/self/mountinfo with one mount per hierarchy (cpu and cpuacct
// co-mounted, as on most distributions), and each controller's files with kernel wording.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metrics as V1Metrics } from '../../api/gen/io/containerd/cgroups/v1/metrics';
import { ContainerCgroups, V1_METRICS_TYPE } from '../../src/cgroups/container-cgroups';
import { watchOomV1 } from '../../src/cgroups/oom';
import { cgroupMode, parseCgroupV1Mounts, parseProcCgroup, v1ControllerDirs } from '../../src/cgroups/proc';
import { CgroupV1, parseBlkioEntries } from '../../src/cgroups/v1';
import { nullLogger } from '../../src/log';

const PID = 777;
const CG = '/ferry-ns/c1';

function write(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
}

function fakeTree() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cg1-'));
  const procRoot = path.join(tmp, 'proc');
  const mnt = (c: string) => path.join(tmp, 'sys/fs/cgroup', c);
  write(path.join(procRoot, String(PID)), {
    cgroup: [
      `12:hugetlb:${CG}`, `11:pids:${CG}`, `10:blkio:${CG}`, `9:memory:${CG}`, `4:cpu,cpuacct:${CG}`,
      `3:freezer:${CG}`, `1:name=systemd:${CG}`, `0::/`, '',
    ].join('\n'),
  });
  const mountLine = (id: number, dir: string, opts: string) => `${id} 25 0:${id} / ${dir} rw,nosuid,nodev,noexec,relatime shared:${id} - cgroup cgroup rw,${opts}`;
  write(path.join(procRoot, 'self'), {
    mountinfo: [
      `25 23 0:22 / ${path.join(tmp, 'sys/fs/cgroup')} ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755`,
      `26 25 0:23 / ${mnt('unified')} rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate`,
      mountLine(27, mnt('systemd'), 'xattr,name=systemd'),
      mountLine(30, mnt('cpu,cpuacct'), 'cpu,cpuacct'),
      mountLine(31, mnt('memory'), 'memory'),
      mountLine(32, mnt('blkio'), 'blkio'),
      mountLine(33, mnt('pids'), 'pids'),
      mountLine(34, mnt('hugetlb'), 'hugetlb'),
      mountLine(35, mnt('freezer'), 'freezer'),
      '',
    ].join('\n'),
  });
  write(procRoot, { partitions: 'major minor  #blocks  name\n\n 254        0  268435456 vda\n 254        1  268434415 vda1\n' });
  const dirs = {
    cpu: path.join(mnt('cpu,cpuacct'), CG), memory: path.join(mnt('memory'), CG), blkio: path.join(mnt('blkio'), CG),
    pids: path.join(mnt('pids'), CG), hugetlb: path.join(mnt('hugetlb'), CG),
  };
  write(dirs.cpu, {
    'cpu.stat': 'nr_periods 20\nnr_throttled 3\nthrottled_time 4500000\nnr_bursts 0\nburst_time 0\n',
    'cpuacct.stat': 'user 150\nsystem 25\n',
    'cpuacct.usage': '1750000000\n',
    'cpuacct.usage_percpu': '1000000000 750000000 \n',
  });
  write(dirs.memory, {
    'memory.stat': [
      'cache 9269248', 'rss 10452992', 'rss_huge 2097152', 'shmem 0', 'mapped_file 7548928', 'dirty 24576',
      'writeback 0', 'swap 0', 'pgpgin 61155', 'pgpgout 56340', 'pgfault 100172', 'pgmajfault 3',
      'inactive_anon 4096', 'active_anon 1531904', 'inactive_file 16384', 'active_file 167936', 'unevictable 0',
      'hierarchical_memory_limit 67108864', 'hierarchical_memsw_limit 9223372036854771712',
      'total_cache 9269248', 'total_rss 10452992', 'total_rss_huge 2097152', 'total_mapped_file 7548928',
      'total_dirty 24576', 'total_writeback 0', 'total_pgpgin 61155', 'total_pgpgout 56340',
      'total_pgfault 100172', 'total_pgmajfault 3', 'total_inactive_anon 4096', 'total_active_anon 1531904',
      'total_inactive_file 16384', 'total_active_file 167936', 'total_unevictable 0', '',
    ].join('\n'),
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
    'memory.usage_in_bytes': '19722240\n', 'memory.max_usage_in_bytes': '25000000\n', 'memory.failcnt': '7\n',
    'memory.limit_in_bytes': '67108864\n',
    'memory.kmem.usage_in_bytes': '1000\n', 'memory.kmem.max_usage_in_bytes': '2000\n', 'memory.kmem.failcnt': '0\n',
    'memory.kmem.limit_in_bytes': '9223372036854771712\n',
    // no memory.memsw.*: swap accounting off (optional, like the Go shim's OptionalSwap)
    'memory.kmem.tcp.usage_in_bytes': '0\n', 'memory.kmem.tcp.max_usage_in_bytes': '0\n', 'memory.kmem.tcp.failcnt': '0\n',
    'memory.kmem.tcp.limit_in_bytes': '9223372036854771712\n',
    'cgroup.event_control': '',
  });
  write(dirs.blkio, {
    'blkio.io_serviced_recursive': 'Total 0\n', // CFQ files present but empty: throttle.* is used
    'blkio.sectors_recursive': '', 'blkio.io_service_bytes_recursive': 'Total 0\n', 'blkio.io_queued_recursive': 'Total 0\n',
    'blkio.io_service_time_recursive': 'Total 0\n', 'blkio.io_wait_time_recursive': 'Total 0\n',
    'blkio.io_merged_recursive': 'Total 0\n', 'blkio.time_recursive': '',
    'blkio.throttle.io_serviced': '254:0 Read 16\n254:0 Write 2\n254:0 Sync 18\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 18\nTotal 18\n',
    'blkio.throttle.io_service_bytes': '254:0 Read 1048576\n254:0 Write 8192\nTotal 1056768\n',
  });
  write(dirs.pids, { 'pids.current': '2\n', 'pids.max': 'max\n' });
  write(dirs.hugetlb, {
    'hugetlb.2MB.usage_in_bytes': '0\n', 'hugetlb.2MB.max_usage_in_bytes': '0\n', 'hugetlb.2MB.failcnt': '0\n', 'hugetlb.2MB.limit_in_bytes': '9223372036854771712\n',
    'hugetlb.1GB.usage_in_bytes': '1073741824\n', 'hugetlb.1GB.max_usage_in_bytes': '1073741824\n', 'hugetlb.1GB.failcnt': '1\n', 'hugetlb.1GB.limit_in_bytes': '1073741824\n',
  });
  return { tmp, procRoot, dirs, mnt };
}

describe('cgroup v1 discovery', () => {
  test('/proc/<pid>/cgroup + mountinfo give each controller its directory, co-mounted ones included', async () => {
    const t = fakeTree();
    try {
      const cg = await CgroupV1.forPid(PID, t.procRoot);
      expect(cg.dir('memory')).toBe(t.dirs.memory);
      expect(cg.dir('cpu')).toBe(t.dirs.cpu);
      expect(cg.dir('cpuacct')).toBe(t.dirs.cpu);
      expect(cg.dir('pids')).toBe(t.dirs.pids);
      expect(cg.dir('name=systemd')).toBe(path.join(t.mnt('systemd'), CG));
      expect(cg.dir('devices')).toBeUndefined(); // not mounted in this tree
    } finally {
      fs.rmSync(t.tmp, { recursive: true, force: true });
    }
  });

  test('a hierarchy mounted at a sub-path (cgroup namespace) resolves relative to the mount root; paths may hold ":"', () => {
    const entries = parseProcCgroup('5:memory:/kubepods/pod:a/c1\n0::/x\n');
    expect(entries[0]).toEqual({ hierarchyId: 5, controllers: ['memory'], path: '/kubepods/pod:a/c1' });
    const mounts = parseCgroupV1Mounts('40 31 0:32 /kubepods /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n');
    expect(v1ControllerDirs(entries, mounts).get('memory')).toBe('/sys/fs/cgroup/memory/pod:a/c1');
    expect(() => parseProcCgroup('garbage\n')).toThrow(/invalid/);
  });
});

describe('cgroup v1 stats', () => {
  let t: ReturnType<typeof fakeTree>;
  beforeEach(() => { t = fakeTree(); });
  afterEach(() => fs.rmSync(t.tmp, { recursive: true, force: true }));

  test('memory, oom_control, cpu usage (ticks to ns) and throttling, pids, blkio, hugetlb', async () => {
    const m = await (await CgroupV1.forPid(PID, t.procRoot)).stats();
    expect(m.cpu!.usage).toEqual({ total: 1750000000n, user: 1500000000n, kernel: 250000000n, perCpu: [1000000000n, 750000000n] });
    expect(m.cpu!.throttling).toEqual({ periods: 20n, throttledPeriods: 3n, throttledTime: 4500000n });
    expect(m.pids).toEqual({ current: 2n, limit: 0n }); // "max" is 0 on v1, as containerd/cgroups keeps it
    expect(m.memory).toMatchObject({
      cache: 9269248n, rss: 10452992n, rssHuge: 2097152n, mappedFile: 7548928n, dirty: 24576n, pgPgIn: 61155n,
      pgFault: 100172n, pgMajFault: 3n, inactiveAnon: 4096n, activeAnon: 1531904n, hierarchicalMemoryLimit: 67108864n,
      hierarchicalSwapLimit: 9223372036854771712n, totalRss: 10452992n, totalPgMajFault: 3n, totalActiveFile: 167936n,
      usage: { usage: 19722240n, max: 25000000n, failcnt: 7n, limit: 67108864n },
      swap: { usage: 0n, max: 0n, failcnt: 0n, limit: 0n },
      kernel: { usage: 1000n, max: 2000n, failcnt: 0n, limit: 9223372036854771712n },
    });
    expect(m.memoryOomControl).toEqual({ oomKillDisable: 0n, underOom: 0n, oomKill: 2n });
    expect(m.blkio!.ioServicedRecursive).toEqual([
      { major: 254n, minor: 0n, op: 'Read', value: 16n, device: '/dev/vda' },
      { major: 254n, minor: 0n, op: 'Write', value: 2n, device: '/dev/vda' },
      { major: 254n, minor: 0n, op: 'Sync', value: 18n, device: '/dev/vda' },
      { major: 254n, minor: 0n, op: 'Async', value: 0n, device: '/dev/vda' },
      { major: 254n, minor: 0n, op: 'Discard', value: 0n, device: '/dev/vda' },
      { major: 254n, minor: 0n, op: 'Total', value: 18n, device: '/dev/vda' },
    ]);
    expect(m.blkio!.ioServiceBytesRecursive.map((e) => [e.op, e.value])).toEqual([['Read', 1048576n], ['Write', 8192n]]);
    expect(m.hugetlb).toEqual([
      { pagesize: '2MB', usage: 0n, max: 0n, failcnt: 0n },
      { pagesize: '1GB', usage: 1073741824n, max: 1073741824n, failcnt: 1n },
    ]);
  });

  test('a controller whose files are gone is left empty (IgnoreNotExist); the rest is still read', async () => {
    fs.rmSync(t.dirs.memory, { recursive: true });
    const m = await (await CgroupV1.forPid(PID, t.procRoot)).stats();
    expect(m.memory).toBeUndefined();
    expect(m.pids!.current).toBe(2n);
  });

  test('a malformed file is an error', async () => {
    write(t.dirs.cpu, { 'cpuacct.stat': 'user 1\n' });
    await expect((await CgroupV1.forPid(PID, t.procRoot)).stats()).rejects.toThrow(/expected field "system"/);
  });

  test('Stats through ContainerCgroups: an Any of type io.containerd.cgroups.v1.Metrics that decodes back', async () => {
    const cgs = new ContainerCgroups({ log: nullLogger, onOom: () => undefined, mode: 'hybrid', procRoot: t.procRoot });
    await cgs.track('c1', PID);
    const any = await cgs.stats('c1');
    expect(any.typeUrl).toBe(V1_METRICS_TYPE);
    const m = V1Metrics.decode(any.value);
    expect(m.memory!.usage!.usage).toBe(19722240n);
    expect(m.cpu!.usage!.perCpu).toEqual([1000000000n, 750000000n]);
  });

  test('blkio lines: 3-field (no op) lines, Total skipped, bad lines rejected', () => {
    expect(parseBlkioEntries('8:0 42\nTotal 42\n', new Map())).toEqual([{ major: 8n, minor: 0n, op: '', value: 42n, device: '' }]);
    expect(() => parseBlkioEntries('8:0\n', new Map())).toThrow(/invalid blkio line/);
  });
});

describe('cgroup v1 OOM notification (eventfd + cgroup.event_control)', () => {
  let t: ReturnType<typeof fakeTree>;
  beforeEach(() => { t = fakeTree(); });
  afterEach(() => fs.rmSync(t.tmp, { recursive: true, force: true }));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** Plays the kernel: reads "<efd> <cfd>" from cgroup.event_control and signals the eventfd. */
  function kernelSignal(): void {
    const line = fs.readFileSync(path.join(t.dirs.memory, 'cgroup.event_control'), 'utf8');
    const efd = Number(line.split(' ')[0]);
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(1n);
    fs.writeSync(efd, buf);
  }

  test('registers "<eventfd> <oom_control fd>" and reports each signal; nothing after stop()', async () => {
    const seen: number[] = [];
    const w = watchOomV1(t.dirs.memory, () => seen.push(1));
    const line = fs.readFileSync(path.join(t.dirs.memory, 'cgroup.event_control'), 'utf8');
    expect(line).toMatch(/^\d+ \d+$/);
    const [efd] = line.split(' ').map(Number);
    expect(fs.readlinkSync(`/proc/self/fd/${efd}`)).toBe('anon_inode:[eventfd]');
    kernelSignal();
    for (let i = 0; i < 300 && seen.length < 1; i++) await sleep(10);
    expect(seen).toHaveLength(1);
    kernelSignal();
    for (let i = 0; i < 300 && seen.length < 2; i++) await sleep(10);
    expect(seen).toHaveLength(2);
    w.stop();
    w.stop();
    expect(fs.existsSync(`/proc/self/fd/${efd}`) && fs.readlinkSync(`/proc/self/fd/${efd}`) === 'anon_inode:[eventfd]').toBe(false);
  });

  test('the signal the kernel sends when the cgroup is removed is not an OOM', async () => {
    const seen: number[] = [];
    const w = watchOomV1(t.dirs.memory, () => seen.push(1));
    const line = fs.readFileSync(path.join(t.dirs.memory, 'cgroup.event_control'), 'utf8');
    const efd = Number(line.split(' ')[0]);
    fs.rmSync(t.dirs.memory, { recursive: true });
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(1n);
    fs.writeSync(efd, buf);
    await sleep(300);
    expect(seen).toHaveLength(0);
    w.stop();
  });

  test('a memory cgroup without memory.oom_control fails at once and leaks no eventfd', () => {
    fs.rmSync(path.join(t.dirs.memory, 'memory.oom_control'));
    const before = fs.readdirSync('/proc/self/fd').length;
    expect(() => watchOomV1(t.dirs.memory, () => undefined)).toThrow(/ENOENT/);
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });
});

describe('cgroup mode', () => {
  test('statfs magic: a plain directory is legacy; this host agrees with cgroup.controllers', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cgmode-'));
    try {
      expect(cgroupMode(tmp)).toBe('legacy');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    const unified = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
    const mode = cgroupMode();
    if (unified) expect(mode).toBe('unified');
    else expect(['legacy', 'hybrid']).toContain(mode);
    expect(mode === 'hybrid').toBe(!unified && fs.existsSync('/sys/fs/cgroup/unified/cgroup.procs'));
  });
});
