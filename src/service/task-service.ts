// containerd's Task service, with the semantics of containerd-shim-runc-v2
// (runtime/v2/runc/task/service.go): one shim daemon can hold several containers (grouping),
// each with its init and exec'd processes. Events are published in the order containerd
// documents: create, start, exec-added, exec-started, exit (execs before their init), delete.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type * as shim from '../../api/gen/containerd/task/v2/shim';
import * as ev from '../../api/gen/containerd/events/task';
import { ProcessDetails } from '../../api/gen/containerd/runc/v1/options';
import type { Any } from '../../api/gen/google/protobuf/any';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import type { EventPublisher } from '../events/publisher';
import { PipeIO } from '../io/pipe-io';
import { ConsoleIO, consoleOf } from '../io/console-io';
import { createLogUriIO } from '../io/log-uri';
import type { ProcessIO, StdioPaths } from '../io/process-io';
import type { Logger } from '../log';
import { ExecProcess, execProcessSpec } from '../process/exec-process';
import { InitProcess, IO_DRAIN_TIMEOUT_MS, OUTPUT_EOF_TIMEOUT_MS } from '../process/init-process';
import { statusNumber } from '../process/process-state';
import { reaper, type Exit } from '../process/reaper';
import { killStrays, strayChildren } from '../process/stray-processes';
import type { ShimProcess } from '../process/shim-process';
import { Runc } from '../runc/runc';
import { removeHalfCreated } from '../runc/half-created';
import { mountAll, unmountAll, unmountAllAsync } from '../sys/mounts';
import { Container } from './container';
import { checkpointContainer, decodeCheckpointOptions } from '../checkpoint/checkpoint';
import { prepareRestore, type RestorePlan } from '../checkpoint/restore';
import { RestoredInitProcess } from '../checkpoint/restored-init';
import { removeStagingDir } from '../format/archive-staging';
import { decodeRuntimeOptions, type RuntimeOptions } from './runtime-options';
import { toTimestamp } from './timestamps';
import { ContainerCgroups } from '../cgroups/container-cgroups';


export interface TaskServiceDeps {
  namespace: string;
  publisher: Pick<EventPublisher, 'publish'>;
  log: Logger;
  /** Called when Shutdown finds no container left: the daemon then exits. */
  onShutdown: () => void;
  /**
   * Called when a container's Delete has cleaned its bundle (runc state, rootfs): the daemon
   * leaves the record that lets the `delete` action skip node (src/shim-actions/cleaned-record.ts).
   */
  onBundleCleaned?: (bundle: string, initPid: number) => void;
}

function anyOf<T>(typeName: string, codec: { encode(m: T): { finish(): Uint8Array } }, msg: T): Any {
  return { typeUrl: typeName, value: codec.encode(msg).finish() };
}

export class TaskService {
  private readonly containers = new Map<string, Container>();
  /** Ids with a Create in flight. */
  private readonly creating = new Set<string>();
  /** Per process: resolves once its start (and start event) has settled; exits wait for it. */
  private readonly startGates = new WeakMap<ShimProcess, Promise<unknown>>();

  /** Containers' cgroups: Stats, and OOM watching from Start to Delete. */
  private readonly cgroups: ContainerCgroups;

  constructor(private readonly deps: TaskServiceDeps) {
    this.cgroups = new ContainerCgroups({
      log: deps.log,
      onOom: (id) => this.publish('/tasks/oom', 'containerd.events.TaskOOM', ev.TaskOOM, { containerId: id }),
    });
  }

  get size(): number { return this.containers.size + this.creating.size; }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id}: not found`);
    return c;
  }

  private publish(topic: string, typeName: string, codec: { encode(m: never): { finish(): Uint8Array } }, msg: unknown): void {
    this.deps.publisher.publish(topic, anyOf(typeName, codec as never, msg as never));
  }

  /** Creates the IO for a process (pipes; a terminal or log URI is handled by its own ProcessIO). */
  protected createIO(stdio: StdioPaths, options: RuntimeOptions, containerId = ''): ProcessIO | null {
    if (stdio.terminal) return ConsoleIO.create(stdio);
    const owner = options.ioUid || options.ioGid ? { uid: options.ioUid, gid: options.ioGid } : undefined;
    const logIO = createLogUriIO(stdio.stdout, { containerId, namespace: this.deps.namespace, owner });
    if (logIO) return logIO;
    if (!stdio.stdin && !stdio.stdout && !stdio.stderr) return null;
    return PipeIO.create(stdio, owner);
  }

  async create(r: shim.CreateTaskRequest): Promise<shim.CreateTaskResponse> {
    if (!r.id) throw new InvalidArgumentError('container id is required');
    if (this.containers.has(r.id) || this.creating.has(r.id)) throw new AlreadyExistsError(`container ${r.id}: already exists`);
    this.creating.add(r.id);
    const rootfs = path.join(r.bundle, 'rootfs');
    let mounted = false;
    let io: ProcessIO | null = null;
    let restore: RestorePlan | undefined;
    try {
      const options = decodeRuntimeOptions(r.options);
      // `delete -bundle` (when the daemon is gone) needs to know which runc and root to use.
      await fsp.writeFile(path.join(r.bundle, 'options.json'), JSON.stringify(options), { mode: 0o600 });
      // A restore is checked (CRIU, checkpoint content, pod/namespaces) before anything is mounted.
      if (r.checkpoint || options.criuImagePath) {
        restore = await prepareRestore({ bundle: r.bundle, checkpoint: r.checkpoint, parentCheckpoint: r.parentCheckpoint, options, log: this.deps.log });
      }
      const spec = JSON.parse(await fsp.readFile(path.join(r.bundle, 'config.json'), 'utf8')) as OciSpec;
      if (r.rootfs.length > 0) {
        await fsp.mkdir(rootfs, { recursive: true, mode: 0o711 });
        mountAll(r.rootfs.map((m) => ({ type: m.type, source: m.source, options: m.options })), rootfs);
        mounted = true;
      }
      const runc = new Runc({
        binary: options.binaryName, root: path.join(options.root, this.deps.namespace),
        logPath: path.join(r.bundle, 'log.json'), systemdCgroup: options.systemdCgroup,
        criuPath: options.criuPath || undefined, workDir: r.bundle,
      });
      const stdio: StdioPaths = { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal };
      const init = restore
        ? new RestoredInitProcess(r.id, r.bundle, stdio, runc, options, restore)
        : new InitProcess(r.id, r.bundle, stdio, runc, options);
      io = this.createIO(stdio, options, r.id);
      await io?.ready; // a logger binary must be ready before the container writes
      try {
        await init.create(io);
      } catch (err) {
        // runc may have got halfway (killed, or failed after it made its state dir): leave
        // nothing behind in its state — unless the id was taken there already, which is not ours.
        if (!restore && !/already exists/.test((err as Error).message)) {
          await removeHalfCreated(runc, r.id).catch((e: Error) => this.deps.log.warn(`cleaning up runc state of ${r.id}: ${e.message}`));
        }
        throw err;
      }
      // A restore's IO starts in Start, after runc restore (the Go shim copies after Restore too).
      if (!restore) io?.start();
      if (init.pid) await this.cgroups.track(r.id, init.pid);
      const ownPidNs = (spec.linux?.namespaces ?? []).some((n) => n.type === 'pid' && !n.path);
      const container = new Container(r.id, r.bundle, this.deps.namespace, runc, options, init, ownPidNs, mounted);
      this.containers.set(r.id, container);
      this.publish('/tasks/create', 'containerd.events.TaskCreate', ev.TaskCreate, ev.TaskCreate.fromPartial({
        containerId: r.id, bundle: r.bundle, rootfs: r.rootfs,
        io: { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal },
        checkpoint: r.checkpoint, pid: init.pid,
      }));
      // After the create event: an init that died during Create is handled (and its exit
      // published) now, as the Go shim's handleStarted does for an early exit.
      init.onReaped((exit) => void this.handleInitExit(container, exit));
      return { pid: init.pid };
    } catch (err) {
      io?.close();
      if (restore?.staged) await removeStagingDir(r.bundle);
      if (mounted) {
        try { unmountAll(rootfs); } catch (e) { this.deps.log.warn(`unmount ${rootfs}: ${(e as Error).message}`); }
      }
      throw err;
    } finally {
      this.creating.delete(r.id);
    }
  }

  async start(r: shim.StartRequest): Promise<shim.StartResponse> {
    const c = this.get(r.id);
    if (!r.execId) {
      const gate = c.init.start();
      this.startGates.set(c.init, gate.catch(() => undefined));
      await gate;
      // A restored init has its pid (and cgroup) only now.
      if (!this.cgroups.cgroup(c.id)) await this.cgroups.track(c.id, c.init.pid);
      this.cgroups.watchOom(c.id);
      this.publish('/tasks/start', 'containerd.events.TaskStart', ev.TaskStart, { containerId: c.id, pid: c.init.pid });
      return { pid: c.init.pid };
    }
    const p = c.exec(r.execId);
    // While CRIU holds the container frozen runc would refuse the exec (Container.checkpoint).
    await c.afterCheckpoint();
    // The Go shim's words, also once the init is reaped but its exit not yet published. Unlike
    // the Go shim (whose Wait of such an exec never returns), the exec's waiters are released.
    if (c.initExit || c.init.status === 'stopped' || c.init.status === 'deleted') {
      if (p.status === 'created') p.startRefused();
      throw new FailedPreconditionError(`container ${c.id} init process is not running`);
    }
    c.execStarting();
    const gate = p.start();
    const settled = gate.catch(() => undefined);
    this.startGates.set(p, settled);
    c.execStarts.add(settled);
    try {
      await gate;
    } catch (err) {
      c.execStarts.delete(settled);
      c.execEnded();
      await this.killStraysOfFailedExec(c);
      throw err;
    } finally {
      c.execStarts.delete(settled);
    }
    this.publish('/tasks/exec-started', 'containerd.events.TaskExecStarted', ev.TaskExecStarted, { containerId: c.id, execId: p.id, pid: p.pid });
    return { pid: p.pid };
  }

  /**
   * A `runc exec` killed in the middle may have started the process without telling us its pid
   * (src/process/stray-processes.ts): once the container's other exec starts have settled, what
   * is ours, unclaimed and in its pid namespace is killed.
   */
  private async killStraysOfFailedExec(c: Container): Promise<void> {
    if (!c.ownPidNamespace || !c.init.pid) return;
    while (c.execStarts.size > 0) await Promise.all([...c.execStarts]);
    const known = (pid: number) => reaper.isClaimed(pid) || [...c.execs.values()].some((e) => e.pid === pid);
    const killed = killStrays(strayChildren(c.init.pid, known));
    if (killed.length) this.deps.log.warn(`container ${c.id}: killed ${killed.join(', ')}, left running by a failed runc exec`);
  }

  /** /tasks/exit of a process, once its start (and start event) has settled. */
  private async publishExit(c: Container, p: ShimProcess, exit: Exit): Promise<void> {
    await this.startGates.get(p);
    this.publish('/tasks/exit', 'containerd.events.TaskExit', ev.TaskExit, {
      containerId: c.id, id: p.id, pid: p.pid, exitStatus: exit.status, exitedAt: toTimestamp(exit.exitedAt),
    });
  }

  /** An exec exited: its exit is published, then the init's exit may stop waiting for it. */
  private async handleExecExit(c: Container, p: ExecProcess, exit: Exit): Promise<void> {
    try {
      await this.publishExit(c, p, exit);
    } finally {
      c.execEnded();
    }
  }

  /**
   * The init was reaped. As the Go shim's handleInitExit: no exec may start any more; without
   * its own pid namespace the rest of the container is killed (`runc kill --all`); the execs'
   * starts and exits and the init's own runc operations (a Kill) settle; only then is the init
   * marked exited (Wait returns, Delete may come) and its exit published — the last exit of
   * the container.
   */
  private async handleInitExit(c: Container, exit: Exit): Promise<void> {
    c.initExit = exit;
    if (!c.ownPidNamespace) {
      try { await c.runc.kill(c.id, 9, true); } catch (err) {
        this.deps.log.warn(`killing the processes of ${c.id} after its init exited: ${(err as Error).message}`);
      }
    }
    await c.execsEnded();
    await this.startGates.get(c.init);
    await c.init.operationsSettled(); // a Kill being answered is answered first, as in the Go shim
    // containerd's client closes its FIFO readers as soon as Wait returns (Task.Delete cancels
    // its IO before it deletes): what the container wrote must have reached them by then.
    await c.init.io?.outputDelivered?.(OUTPUT_EOF_TIMEOUT_MS);
    // A created init deleted meanwhile (runc delete --force) had its exit recorded there.
    if (c.init.setExited(exit)) await this.publishExit(c, c.init, exit);
  }

  async delete(r: shim.DeleteRequest): Promise<shim.DeleteResponse> {
    const c = this.get(r.id);
    if (r.execId) {
      const p = c.exec(r.execId);
      await p.delete(IO_DRAIN_TIMEOUT_MS);
      await p.io?.terminate?.();
      c.execs.delete(r.execId);
      return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt) };
    }
    const p = c.init;
    await p.delete();
    await p.io?.terminate?.(); // as the Go shim, Delete waits for a logger binary to exit
    this.cgroups.untrack(c.id);
    // Off the event loop: with a dirty overlay upper dir the unmount syncs it (~200 ms).
    if (c.rootfsMounted) await unmountAllAsync(path.join(c.bundle, 'rootfs'));
    this.containers.delete(c.id);
    this.deps.onBundleCleaned?.(c.bundle, p.pid);
    const res = { pid: p.pid, exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt) };
    this.publish('/tasks/delete', 'containerd.events.TaskDelete', ev.TaskDelete, { containerId: c.id, id: '', ...res });
    return res;
  }

  async exec(r: shim.ExecProcessRequest): Promise<void> {
    const c = this.get(r.id);
    // r.execId names files in the bundle (<exec id>.pid): request-checks.ts refused any that is not one path component.
    if (c.execs.has(r.execId)) throw new AlreadyExistsError(`id ${r.execId}: already exists`);
    c.init.check('exec');
    if (!r.spec) throw new InvalidArgumentError('exec process spec is required');
    const stdio: StdioPaths = { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal };
    const p = new ExecProcess(r.execId, c.id, c.bundle, stdio, execProcessSpec(r.spec.value, r.terminal), c.runc, () => this.createIO(stdio, c.options, r.execId)); // the Go shim names an exec's logger by exec id
    p.onExited((exit) => void this.handleExecExit(c, p, exit));
    c.execs.set(r.execId, p);
    this.publish('/tasks/exec-added', 'containerd.events.TaskExecAdded', ev.TaskExecAdded, { containerId: c.id, execId: r.execId });
  }

  async state(r: shim.StateRequest): Promise<shim.StateResponse> {
    const c = this.get(r.id);
    const p = c.process(r.execId);
    return {
      id: p.id, bundle: c.bundle, pid: p.pid, status: statusNumber(p.status) as shim.StateResponse['status'],
      stdin: p.stdio.stdin, stdout: p.stdio.stdout, stderr: p.stdio.stderr, terminal: p.stdio.terminal,
      exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt), execId: r.execId,
    };
  }

  async kill(r: shim.KillRequest): Promise<void> {
    const c = this.get(r.id);
    if (r.execId) await c.exec(r.execId).kill(r.signal);
    else await c.init.kill(r.signal, r.all);
  }

  async wait(r: shim.WaitRequest): Promise<shim.WaitResponse> {
    const p = this.get(r.id).process(r.execId);
    await p.wait();
    return { exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt) };
  }

  async pids(r: shim.PidsRequest): Promise<shim.PidsResponse> {
    const c = this.get(r.id);
    const pids = await c.runc.ps(c.id);
    const byPid = new Map([...c.execs.values()].map((e) => [e.pid, e.id]));
    return {
      processes: pids.map((pid) => {
        const execId = byPid.get(pid);
        return {
          pid,
          info: execId ? anyOf('containerd.runc.v1.ProcessDetails', ProcessDetails, { execId }) : undefined,
        };
      }),
    };
  }

  async pause(r: shim.PauseRequest): Promise<void> {
    const c = this.get(r.id);
    await c.afterCheckpoint();
    await c.init.pause();
    this.publish('/tasks/paused', 'containerd.events.TaskPaused', ev.TaskPaused, { containerId: c.id });
  }

  async resume(r: shim.ResumeRequest): Promise<void> {
    const c = this.get(r.id);
    await c.afterCheckpoint();
    await c.init.resume();
    this.publish('/tasks/resumed', 'containerd.events.TaskResumed', ev.TaskResumed, { containerId: c.id });
  }

  async closeIO(r: shim.CloseIORequest): Promise<void> {
    const p = this.get(r.id).process(r.execId);
    if (r.stdin) p.io?.closeStdin();
  }

  async update(r: shim.UpdateTaskRequest): Promise<void> {
    const c = this.get(r.id);
    c.init.check('update');
    if (!r.resources) throw new InvalidArgumentError('update: resources are required');
    let json: string;
    try {
      json = Buffer.from(r.resources.value).toString('utf8');
      JSON.parse(json);
    } catch {
      throw new InvalidArgumentError(`update: resources of type ${r.resources.typeUrl} are not OCI LinuxResources JSON`);
    }
    await c.runc.update(c.id, json);
  }

  async resizePty(r: shim.ResizePtyRequest): Promise<void> {
    const p = this.get(r.id).process(r.execId);
    // As the Go shim: an init is resized in any state, an exec refuses once stopped. Unlike the
    // Go shim (a silent no-op), a process without a terminal is refused: issue 3 asks bad input
    // to get a clear error, and no client resizes a process it did not give a terminal.
    if (!p.isInit) p.check('resize');
    const console = consoleOf(p.io);
    if (!p.stdio.terminal || !console) throw new FailedPreconditionError(`process ${p.id} has no terminal to resize`);
    console.resize(r.height, r.width);
  }

  async stats(r: shim.StatsRequest): Promise<shim.StatsResponse> {
    this.get(r.id);
    return { stats: await this.cgroups.stats(r.id) };
  }

  async checkpoint(r: shim.CheckpointTaskRequest): Promise<void> {
    const c = this.get(r.id);
    c.init.check('checkpoint');
    const options = decodeCheckpointOptions(r.options);
    await c.checkpoint(async () => {
      c.init.check('checkpoint'); // it may have exited while an earlier checkpoint ran
      await checkpointContainer({
        id: c.id, bundle: c.bundle, runc: c.runc, path: r.path, options,
        criuPath: c.options.criuPath, criuWorkPath: c.options.criuWorkPath, log: this.deps.log,
      });
    });
    this.publish('/tasks/checkpointed', 'containerd.events.TaskCheckpointed', ev.TaskCheckpointed, { containerId: c.id, checkpoint: r.path });
  }

  async connect(r: shim.ConnectRequest): Promise<shim.ConnectResponse> {
    const c = this.containers.get(r.id);
    return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: '' };
  }

  async shutdown(_r: shim.ShutdownRequest): Promise<void> {
    if (this.size > 0) return;
    this.deps.onShutdown();
  }
}

interface OciSpec {
  annotations?: Record<string, string>;
  linux?: { namespaces?: { type: string; path?: string }[] };
  process?: { terminal?: boolean };
}

