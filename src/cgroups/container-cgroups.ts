// The cgroups of the containers one shim daemon holds: found when a container is created (from
// its init pid, as the Go shim does), read for Task.Stats, watched for OOM kills from Start
// until Delete. TaskService only calls track / watchOom / stats / untrack.
import { Metrics as V1Metrics } from '../../api/gen/io/containerd/cgroups/v1/metrics';
import { Metrics as V2Metrics } from '../../api/gen/io/containerd/cgroups/v2/metrics';
import type { Any } from '../../api/gen/google/protobuf/any';
import { NotFoundError } from '../errors';
import type { Logger } from '../log';
import { watchOomV1, watchOomV2, type OomWatcher } from './oom';
import { cgroupMode, CGROUP_ROOT, type CgroupMode } from './proc';
import { CgroupV1 } from './v1';
import { CgroupV2 } from './v2';

export const V1_METRICS_TYPE = 'io.containerd.cgroups.v1.Metrics';
export const V2_METRICS_TYPE = 'io.containerd.cgroups.v2.Metrics';

export type Cgroup = CgroupV1 | CgroupV2;

export interface ContainerCgroupsOptions {
  log: Logger;
  /** Called once per OOM kill in a container's cgroup (publish /tasks/oom). */
  onOom: (containerId: string) => void;
  /** For tests: the host's cgroup mode and where /proc and the v2 root are. */
  mode?: CgroupMode;
  procRoot?: string;
  cgroupRoot?: string;
}

interface Tracked { cgroup: Cgroup; oom?: OomWatcher }

export class ContainerCgroups {
  private readonly tracked = new Map<string, Tracked>();
  private modeCache: CgroupMode | undefined;

  constructor(private readonly opts: ContainerCgroupsOptions) {
    this.modeCache = opts.mode;
  }

  private get mode(): CgroupMode {
    this.modeCache ??= cgroupMode(this.opts.cgroupRoot ?? CGROUP_ROOT);
    return this.modeCache;
  }

  /**
   * Finds the cgroup of a container from its init pid; call right after `runc create`, while
   * the init still waits in runc's own cgroup setup and cannot have moved. Like the Go shim,
   * a failure is logged, not fatal: the container runs, only Stats and OOM events are missing.
   */
  async track(containerId: string, pid: number): Promise<void> {
    try {
      const procRoot = this.opts.procRoot ?? '/proc';
      const cgroup = this.mode === 'unified'
        ? await CgroupV2.forPid(pid, procRoot, this.opts.cgroupRoot ?? CGROUP_ROOT)
        : await CgroupV1.forPid(pid, procRoot);
      this.tracked.set(containerId, { cgroup });
    } catch (err) {
      this.opts.log.error(`loading cgroup of ${containerId} (pid ${pid}): ${(err as Error).message}`);
    }
  }

  /** The container's cgroup, if it was found. */
  cgroup(containerId: string): Cgroup | undefined {
    return this.tracked.get(containerId)?.cgroup;
  }

  /** Starts the OOM watcher (the Go shim adds the cgroup to its OOM monitor in Start). */
  watchOom(containerId: string): void {
    const t = this.tracked.get(containerId);
    if (!t || t.oom) return;
    try {
      const onOom = () => this.opts.onOom(containerId);
      if (t.cgroup instanceof CgroupV2) {
        t.oom = watchOomV2(t.cgroup.dir, onOom);
      } else {
        const memory = t.cgroup.dir('memory');
        if (!memory) throw new Error('no memory controller');
        t.oom = watchOomV1(memory, onOom);
      }
    } catch (err) {
      this.opts.log.error(`add cg to OOM monitor for ${containerId}: ${(err as Error).message}`);
    }
  }

  /** Task.Stats: the metrics as an Any with containerd's type URL for this cgroup version. */
  async stats(containerId: string): Promise<Any> {
    const t = this.tracked.get(containerId);
    if (!t) throw new NotFoundError('cgroup does not exist: not found');
    if (t.cgroup instanceof CgroupV2) {
      return { typeUrl: V2_METRICS_TYPE, value: V2Metrics.encode(await t.cgroup.stats()).finish() };
    }
    return { typeUrl: V1_METRICS_TYPE, value: V1Metrics.encode(await t.cgroup.stats()).finish() };
  }

  /** Stops watching and forgets the container (at Delete). */
  untrack(containerId: string): void {
    this.tracked.get(containerId)?.oom?.stop();
    this.tracked.delete(containerId);
  }
}
