// cgroup v2 stats and OOM watching on a fake cgroup tree laid out (and worded) as the kernel
// does: /proc/<pid>/cgroup with its `0::` line, and the container's directory under the root.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metrics as V2Metrics } from '../../api/gen/io/containerd/cgroups/v2/metrics';
import { ContainerCgroups, V2_METRICS_TYPE } from '../../src/cgroups/container-cgroups';
import { watchOomV2 } from '../../src/cgroups/oom';
import { MAX_UINT64 } from '../../src/cgroups/parse';
import { CgroupV2, parseIoStat } from '../../src/cgroups/v2';
import { nullLogger } from '../../src/log';

const PID = 4242;
const CG_PATH = '/default/c1';

function write(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
}

/** A tree: <tmp>/proc/<pid>/cgroup and <tmp>/sys/fs/cgroup/default/c1/<kernel files>. */
function fakeTree(): { tmp: string; procRoot: string; cgroupRoot: string; dir: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cg2-'));
  const procRoot = path.join(tmp, 'proc');
  const cgroupRoot = path.join(tmp, 'sys/fs/cgroup');
  const dir = path.join(cgroupRoot, CG_PATH);
  fs.mkdirSync(path.join(procRoot, String(PID)), { recursive: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(procRoot, String(PID), 'cgroup'), `0::${CG_PATH}\n`);
  write(cgroupRoot, { 'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n' });
  write(dir, {
    'pids.current': '3\n',
    'pids.max': 'max\n',
    'cpu.stat': 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\ncore_sched.force_idle_usec 0\nnr_periods 10\nnr_throttled 2\nthrottled_usec 5000\nnr_bursts 0\nburst_usec 0\n',
    'cpu.pressure': 'some avg10=1.50 avg60=0.25 avg300=0.00 total=98765\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=12\n',
    'memory.stat': [
      'anon 1048576', 'file 2097152', 'kernel 65536', 'kernel_stack 16384', 'pagetables 8192', 'sec_pagetables 0',
      'percpu 480', 'sock 0', 'vmalloc 0', 'shmem 4096', 'zswap 0', 'zswapped 0', 'file_mapped 8192',
      'file_dirty 12288', 'file_writeback 0', 'swapcached 0', 'anon_thp 0', 'file_thp 0', 'shmem_thp 0',
      'inactive_anon 1040384', 'active_anon 12288', 'inactive_file 1048576', 'active_file 1048576',
      'unevictable 0', 'slab_reclaimable 20000', 'slab_unreclaimable 30000', 'slab 50000',
      'workingset_refault_anon 0', 'workingset_refault_file 7', 'workingset_activate_anon 0',
      'workingset_activate_file 3', 'workingset_restore_anon 0', 'workingset_restore_file 0',
      'workingset_nodereclaim 1', 'pgscan 11', 'pgsteal 9', 'pgscan_kswapd 0', 'pgscan_direct 11',
      'pgfault 4321', 'pgmajfault 5', 'pgrefill 2', 'pgactivate 6', 'pgdeactivate 4', 'pglazyfree 0',
      'pglazyfreed 0', 'zswpin 0', 'zswpout 0', 'thp_fault_alloc 1', 'thp_collapse_alloc 0', '',
    ].join('\n'),
    'memory.current': '3211264\n',
    'memory.max': '67108864\n',
    'memory.peak': '4194304\n',
    'memory.swap.current': '0\n',
    'memory.swap.max': 'max\n',
    'memory.pressure': 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
    'memory.events': 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n',
    'io.stat': '254:0 rbytes=1048576 wbytes=4096 rios=16 wios=1 dbytes=0 dios=0\n8:16 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=0 dios=0\n',
    'hugetlb.2MB.current': '0\n',
    'hugetlb.2MB.max': 'max\n',
    'hugetlb.1GB.current': '1073741824\n',
    'hugetlb.1GB.max': '2147483648\n',
    'cgroup.events': 'populated 1\nfrozen 0\n',
  });
  return { tmp, procRoot, cgroupRoot, dir };
}

describe('cgroup v2 stats', () => {
  let t: ReturnType<typeof fakeTree>;
  beforeEach(() => { t = fakeTree(); });
  afterEach(() => fs.rmSync(t.tmp, { recursive: true, force: true }));

  test('finds the directory from /proc/<pid>/cgroup under the v2 root', async () => {
    const cg = await CgroupV2.forPid(PID, t.procRoot, t.cgroupRoot);
    expect(cg.dir).toBe(t.dir);
  });

  test('reads pids, cpu, memory, memory.events, io, hugetlb with containerd/cgroups semantics', async () => {
    const m = await new CgroupV2(t.dir).stats();
    expect(m.pids).toEqual({ current: 3n, limit: MAX_UINT64 }); // "max" is MaxUint64 on v2
    expect(m.cpu).toMatchObject({ usageUsec: 123456n, userUsec: 100000n, systemUsec: 23456n, nrPeriods: 10n, nrThrottled: 2n, throttledUsec: 5000n });
    expect(m.cpu!.psi).toEqual({ some: { avg10: 1.5, avg60: 0.25, avg300: 0, total: 98765n }, full: { avg10: 0, avg60: 0, avg300: 0, total: 12n } });
    expect(m.memory).toMatchObject({
      anon: 1048576n, file: 2097152n, kernelStack: 16384n, slab: 50000n, shmem: 4096n, fileMapped: 8192n,
      fileDirty: 12288n, inactiveAnon: 1040384n, activeAnon: 12288n, slabReclaimable: 20000n,
      slabUnreclaimable: 30000n, pgfault: 4321n, pgmajfault: 5n, workingsetNodereclaim: 1n, pgscan: 11n,
      pgsteal: 9n, pgrefill: 2n, thpFaultAlloc: 1n,
      usage: 3211264n, usageLimit: 67108864n, maxUsage: 4194304n, swapUsage: 0n, swapLimit: MAX_UINT64,
      swapMaxUsage: 0n, // memory.swap.peak absent: zero, not an error
    });
    expect(m.memoryEvents).toEqual({ low: 0n, high: 0n, max: 4n, oom: 1n, oomKill: 1n });
    expect(m.io!.usage).toEqual([
      { major: 254n, minor: 0n, rbytes: 1048576n, wbytes: 4096n, rios: 16n, wios: 1n },
      { major: 8n, minor: 16n, rbytes: 0n, wbytes: 512n, rios: 0n, wios: 1n },
    ]);
    expect(m.io!.psi).toBeUndefined(); // no io.pressure in this tree
    expect(m.hugetlb).toEqual([
      { pagesize: '1GB', current: 1073741824n, max: 2147483648n },
      { pagesize: '2MB', current: 0n, max: MAX_UINT64 },
    ]);
  });

  test('a cgroup without controllers enabled (only core files) still answers, with zeros', async () => {
    const bare = path.join(t.cgroupRoot, 'bare');
    fs.mkdirSync(bare);
    write(bare, { 'cgroup.procs': '1\n', 'cgroup.events': 'populated 1\nfrozen 0\n' });
    const m = await new CgroupV2(bare).stats();
    expect(m.pids).toEqual({ current: 0n, limit: 0n });
    expect(m.memory!.usage).toBe(0n);
    expect(m.memoryEvents).toBeUndefined();
    expect(m.io!.usage).toEqual([]);
  });

  test('a malformed memory.stat is an error, not silent zeros', async () => {
    write(t.dir, { 'memory.stat': 'anon 1 2\n' });
    await expect(new CgroupV2(t.dir).stats()).rejects.toThrow(/invalid key\/value line/);
  });

  test('Stats through ContainerCgroups: an Any of type io.containerd.cgroups.v2.Metrics that decodes back', async () => {
    const cgs = new ContainerCgroups({ log: nullLogger, onOom: () => undefined, mode: 'unified', procRoot: t.procRoot, cgroupRoot: t.cgroupRoot });
    await cgs.track('c1', PID);
    const any = await cgs.stats('c1');
    expect(any.typeUrl).toBe(V2_METRICS_TYPE);
    const m = V2Metrics.decode(any.value);
    expect(m.memory!.usage).toBe(3211264n);
    expect(m.pids!.current).toBe(3n);
    cgs.untrack('c1');
    await expect(cgs.stats('c1')).rejects.toThrow(/cgroup does not exist/);
  });

  test('parseIoStat skips lines that are not MAJ:MIN', () => {
    expect(parseIoStat('\nfoo bar\n1:2 rbytes=5\n')).toEqual([{ major: 1n, minor: 2n, rbytes: 5n, wbytes: 0n, rios: 0n, wios: 0n }]);
  });
});

describe('cgroup v2 OOM watching (inotify on memory.events)', () => {
  let t: ReturnType<typeof fakeTree>;
  beforeEach(() => { t = fakeTree(); });
  afterEach(() => fs.rmSync(t.tmp, { recursive: true, force: true }));

  const events = (oomKill: number, max = 4) => `low 0\nhigh 0\nmax ${max}\noom ${oomKill}\noom_kill ${oomKill}\noom_group_kill 0\n`;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function until(pred: () => boolean, ms = 3000): Promise<void> {
    for (const end = Date.now() + ms; !pred() && Date.now() < end;) await sleep(10);
  }

  test('one notification per oom_kill increase; earlier kills and other memory events are not reported', async () => {
    const seen: number[] = [];
    const w = watchOomV2(t.dir, () => seen.push(Date.now())); // oom_kill is already 1: not reported
    try {
      fs.writeFileSync(path.join(t.dir, 'memory.events'), events(1, 9)); // only `max` moved
      await sleep(200);
      expect(seen).toHaveLength(0);
      fs.writeFileSync(path.join(t.dir, 'memory.events'), events(2));
      await until(() => seen.length >= 1);
      await sleep(200); // several inotify events for one write must not give a second report
      expect(seen).toHaveLength(1);
      fs.writeFileSync(path.join(t.dir, 'memory.events'), events(3));
      await until(() => seen.length >= 2);
      expect(seen).toHaveLength(2);
    } finally {
      w.stop();
    }
  });

  test('nothing after stop()', async () => {
    const seen: number[] = [];
    const w = watchOomV2(t.dir, () => seen.push(1));
    w.stop();
    w.stop(); // idempotent
    fs.writeFileSync(path.join(t.dir, 'memory.events'), events(5));
    await sleep(200);
    expect(seen).toHaveLength(0);
  });

  test('ContainerCgroups publishes through onOom with the container id once watching has started', async () => {
    const ids: string[] = [];
    const cgs = new ContainerCgroups({ log: nullLogger, onOom: (id) => ids.push(id), mode: 'unified', procRoot: t.procRoot, cgroupRoot: t.cgroupRoot });
    await cgs.track('c1', PID);
    fs.writeFileSync(path.join(t.dir, 'memory.events'), events(2)); // before Start: not watched yet
    await sleep(100);
    cgs.watchOom('c1');
    fs.writeFileSync(path.join(t.dir, 'memory.events'), events(3));
    await until(() => ids.length > 0);
    cgs.untrack('c1');
    fs.writeFileSync(path.join(t.dir, 'memory.events'), events(4));
    await sleep(200);
    expect(ids).toEqual(['c1']);
  });

  test('the watcher stops by itself when the cgroup goes away', async () => {
    const seen: number[] = [];
    const w = watchOomV2(t.dir, () => seen.push(1));
    fs.rmSync(t.dir, { recursive: true });
    await sleep(200);
    expect(seen).toHaveLength(0);
    w.stop();
  });
});
