// `make bench-cri`: ferry as a CRI runtime handler against containerd's runc handler, side by
// side in one run on one private containerd 2.1 with CRI (test/helpers/cri-config.ts), driven
// through CRI as kubelet drives it:
//  - pod start: RunPodSandbox + CreateContainer + StartContainer, until ContainerStatus says
//    RUNNING (hostNetwork pods, one container); rounds interleaved, the first runtime alternating;
//  - shim memory per pod: 1 and 20 pods (a sandbox and one container each) per handler, each
//    handler alone; PSS and anonymous memory from /proc/<daemon>/smaps_rollup summed over the
//    handler's shim daemons (one per pod), divided by the pods;
//  - CheckpointContainer of a counter container (kubelet-style location), interleaved.
// Prints ratios (ferry/runc) and writes build/bench/results-cri.json; docs/benchmarks.md has the
// recorded run with its machine and load.
//
// Environment: BENCH_QUICK=1 (small counts), BENCH_CRI_N (pod-start rounds, 10),
// BENCH_CRI_PODS (20), BENCH_CRI_CKPT_N (5).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ContainerState } from '../api/gen/k8s/cri/v1/api';
import { Containerd, REPO_ROOT, startContainerd } from '../test/helpers/containerd';
import { CriClient } from '../test/helpers/cri';
import { CRI_HANDLERS } from '../test/helpers/cri-config';
import { checkpointThroughCri, runCounterPod, waitForCount } from '../test/helpers/cri-checkpoint';
import { sleep } from '../test/helpers/procfs';
import { envCount, procKiB } from './context';
import { machineInfo, MachineInfo } from './machine';
import { fmt, fmtRatio, msSince, ratio, summarize, Summary } from './stats';

type Label = 'ferry' | 'runc';
const HANDLERS: { label: Label; handler: string }[] = [
  { label: 'ferry', handler: CRI_HANDLERS.ferry },
  { label: 'runc', handler: CRI_HANDLERS.runc },
];

interface MemoryPoint { pods: number; daemons: number; pssMiBPerPod: number; anonMiBPerPod: number }

export interface CriBenchResult {
  machine: MachineInfo;
  quick: boolean;
  podStartMs: Record<Label, Summary>;
  podStartRatio: { median: number; p90: number };
  memory: Record<Label, MemoryPoint[]>;
  memoryRatio: { pods: number; pss: number; anon: number }[];
  checkpointMs: Record<Label, Summary>;
  checkpointRatio: { median: number; p90: number };
}

const IDLE = ['/bin/sh', '-c', 'while :; do sleep 1; done'];
let pods = 0;

async function startPod(c: Containerd, cri: CriClient, handler: string): Promise<{ podId: string; ms: number }> {
  const name = `bench-${handler}-${++pods}`;
  const t0 = process.hrtime.bigint();
  const pod = await cri.runPod({ name, runtimeHandler: handler, logDirectory: path.join(c.dir, 'pod-logs', name) });
  const id = await cri.startContainer(pod, { metadata: { name: 'idle' }, image: { image: c.image!.name }, command: IDLE });
  await cri.waitForState(id, ContainerState.CONTAINER_RUNNING, 60000);
  return { podId: pod.id, ms: msSince(t0) };
}

function shimMemory(c: Containerd, podIds: string[]): { daemons: number; pssKiB: number; anonKiB: number } {
  const pids = new Set<number>();
  for (const id of podIds) for (const d of c.shimDaemons(id)) pids.add(d.pid);
  let pssKiB = 0;
  let anonKiB = 0;
  for (const pid of pids) {
    pssKiB += procKiB(`/proc/${pid}/smaps_rollup`, 'Pss') ?? 0;
    anonKiB += procKiB(`/proc/${pid}/smaps_rollup`, 'Anonymous') ?? 0;
  }
  return { daemons: pids.size, pssKiB, anonKiB };
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const rounds = envCount('BENCH_CRI_N', 10, 3, quick);
  const maxPods = envCount('BENCH_CRI_PODS', 20, 3, quick);
  const ckptN = envCount('BENCH_CRI_CKPT_N', 5, 2, quick);
  const t00 = Date.now();
  const log = (m: string) => console.log(`[bench-cri ${((Date.now() - t00) / 1000).toFixed(0).padStart(4)}s] ${m}`);
  const c = await startContainerd({ version: '2.1', cri: true });
  const cri = c.criClient();
  try {
    const machine = machineInfo(c, process.env.NODE_EXTRA_CA_CERTS !== undefined);
    log(`load average ${machine.loadAverage.join(' ')}, other containerds: ${machine.otherContainerds}`);

    // Pod start, interleaved.
    const startMs: Record<Label, number[]> = { ferry: [], runc: [] };
    for (let i = 0; i < rounds; i++) {
      for (const h of i % 2 ? [...HANDLERS].reverse() : HANDLERS) {
        const { podId, ms } = await startPod(c, cri, h.handler);
        startMs[h.label].push(ms);
        await cri.removePod(podId);
      }
    }
    log(`pod start: ferry ${fmt(summarize(startMs.ferry).median)} ms, runc ${fmt(summarize(startMs.runc).median)} ms (medians of ${rounds})`);

    // Memory per pod, each handler alone.
    const memory: Record<Label, MemoryPoint[]> = { ferry: [], runc: [] };
    for (const h of HANDLERS) {
      const ids: string[] = [];
      try {
        for (const target of [1, maxPods]) {
          while (ids.length < target) ids.push((await startPod(c, cri, h.handler)).podId);
          await sleep(quick ? 1000 : 3000); // let each daemon settle (lazy loading, first GC)
          const m = shimMemory(c, ids);
          memory[h.label].push({ pods: target, daemons: m.daemons, pssMiBPerPod: m.pssKiB / 1024 / target, anonMiBPerPod: m.anonKiB / 1024 / target });
          log(`memory ${h.label} ×${target} pods: ${m.daemons} daemons, PSS ${fmt(m.pssKiB / 1024 / target)} MiB/pod, anon ${fmt(m.anonKiB / 1024 / target)} MiB/pod`);
        }
      } finally {
        for (let i = 0; i < ids.length; i += 5) await Promise.all(ids.slice(i, i + 5).map((id) => cri.removePod(id)));
      }
    }

    // CheckpointContainer, interleaved; a fresh counter pod per sample.
    const ckptMs: Record<Label, number[]> = { ferry: [], runc: [] };
    for (let i = 0; i < ckptN; i++) {
      for (const h of i % 2 ? [...HANDLERS].reverse() : HANDLERS) {
        const p = await runCounterPod(c, cri, { name: `bench-ckpt-${h.label}-${++pods}`, image: c.image!.name, handler: h.handler });
        await waitForCount(cri, p.containerId, 2);
        const t0 = process.hrtime.bigint();
        const archive = await checkpointThroughCri(cri, p, path.join(c.dir, 'checkpoints'));
        ckptMs[h.label].push(msSince(t0));
        fs.rmSync(archive);
        await cri.removePod(p.pod.id);
      }
    }
    log(`CheckpointContainer: ferry ${fmt(summarize(ckptMs.ferry).median)} ms, runc ${fmt(summarize(ckptMs.runc).median)} ms (medians of ${ckptN})`);

    const s = (x: Record<Label, number[]>) => ({ ferry: summarize(x.ferry), runc: summarize(x.runc) });
    const podStartMs = s(startMs);
    const checkpointMs = s(ckptMs);
    const result: CriBenchResult = {
      machine, quick,
      podStartMs,
      podStartRatio: { median: ratio(podStartMs.ferry.median, podStartMs.runc.median), p90: ratio(podStartMs.ferry.p90, podStartMs.runc.p90) },
      memory,
      memoryRatio: memory.ferry.map((m, i) => ({ pods: m.pods, pss: ratio(m.pssMiBPerPod, memory.runc[i]?.pssMiBPerPod), anon: ratio(m.anonMiBPerPod, memory.runc[i]?.anonMiBPerPod) })),
      checkpointMs,
      checkpointRatio: { median: ratio(checkpointMs.ferry.median, checkpointMs.runc.median), p90: ratio(checkpointMs.ferry.p90, checkpointMs.runc.p90) },
    };
    const out = path.join(REPO_ROOT, 'build', 'bench');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'results-cri.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\n${render(result)}\n`);
    log(`written build/bench/results-cri.json; total ${((Date.now() - t00) / 1000).toFixed(0)} s`);
  } catch (err) {
    // Keep containerd's log (with the shims' lines) for the failure; stop() removes its dir.
    const keep = path.join(REPO_ROOT, 'build', 'bench', 'cri-containerd-failure.log');
    fs.mkdirSync(path.dirname(keep), { recursive: true });
    fs.copyFileSync(c.logPath, keep);
    log(`FAILED; containerd's log kept in ${keep}`);
    throw err;
  } finally {
    cri.close();
    await c.stop();
  }
}

function render(r: CriBenchResult): string {
  const row = (what: string, x: Record<Label, Summary>, q: { median: number; p90: number }) => [
    `| ${what} | ${fmt(x.ferry.median)} | ${fmt(x.runc.median)} | ${fmtRatio(q.median)} | ${fmt(x.ferry.p90)} | ${fmt(x.runc.p90)} | ${fmtRatio(q.p90)} |`,
  ];
  const mem = r.memory.ferry.map((m, i) => {
    const g = r.memory.runc[i]!;
    const q = r.memoryRatio[i]!;
    return `| ${m.pods} | ${fmt(m.pssMiBPerPod)} | ${fmt(g.pssMiBPerPod)} | ${fmtRatio(q.pss)} | ${fmt(m.anonMiBPerPod)} | ${fmt(g.anonMiBPerPod)} | ${fmtRatio(q.anon)} |`;
  });
  return [
    `CRI on containerd 2.1 (${r.machine.nproc} cores, load ${r.machine.loadAverage.join(' ')}, ${r.machine.otherContainerds} other containerds${r.quick ? ', quick run' : ''})`,
    '',
    `| ms (N=${r.podStartMs.ferry.n} / ${r.checkpointMs.ferry.n}) | ferry median | runc median | ferry/runc | ferry p90 | runc p90 | ferry/runc |`,
    '|---|---|---|---|---|---|---|',
    ...row('pod start (RunPodSandbox + CreateContainer + StartContainer → RUNNING)', r.podStartMs, r.podStartRatio),
    ...row('CheckpointContainer (counter, leave running)', r.checkpointMs, r.checkpointRatio),
    '',
    '| pods | ferry PSS MiB/pod | runc PSS MiB/pod | ferry/runc | ferry anon MiB/pod | runc anon MiB/pod | ferry/runc |',
    '|---|---|---|---|---|---|---|',
    ...mem,
  ].join('\n');
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
