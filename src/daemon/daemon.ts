// The shim daemon: serves the task API on the socket `start` made (the daemon is the `start`
// process itself, src/shim-actions/start.ts), owns the container processes as their child
// subreaper, and publishes events. It exits when containerd calls Shutdown and no container is left.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ShimFlags } from '../shim-actions/flags';
import type { DaemonHandoff } from '../shim-actions/start';
import { EventPublisher } from '../events/publisher';
import { createLogger, type Logger } from '../log';
import { reaper } from '../process/reaper';
import { ShimListener } from '../protocol/listener';
import { TaskService } from '../service/task-service';
import { taskServices } from '../service/task-rpc';
import { lowMemoryNotification, mallocTrim, setChildSubreaper } from '../sys/native';
import { CreateTaskRequest } from '../../api/gen/containerd/task/v2/shim';
import { GroupMembership } from './group-membership';
import { CLEANED_RECORD, writeCleanedRecord } from '../shim-actions/cleaned-record';
import { dropAddedEnv } from '../shim-actions/daemon-tuning';
import { diagnosticsDirFromEnv, installDiagnostics } from './diagnostics';
import { MemorySettler } from './memory-settler';
import { RESTORE_METHOD, type CacheLearner } from '../loader/learned-cache';

/** `learner`: the daemon's learned code cache (src/loader/learned-cache.ts), absent when off. */
export async function runDaemon(flags: ShimFlags, handoff: DaemonHandoff, learner?: CacheLearner): Promise<void> {
  dropAddedEnv();
  const bundle = process.cwd();
  // containerd removes bundle directories; never keep one as our working directory.
  process.chdir('/');
  const log = createLogger({
    fifoPath: path.join(bundle, 'log'),
    debug: flags.debug,
    defaultMeta: { namespace: flags.namespace, pid: process.pid, runtime: 'io.containerd.ferry.v2' },
  });
  setChildSubreaper();
  reaper.start();

  const { socketPath } = handoff;
  const ttrpcAddress = process.env.TTRPC_ADDRESS ?? `${flags.address}.ttrpc`;
  const publisher = new EventPublisher(ttrpcAddress, flags.namespace, log);

  let listener: ShimListener | null = null;
  let exiting = false;
  // Grouping: `start`s join through a handshake; see group-membership.ts for the exit race.
  const membership = new GroupMembership(() => {
    if (service.size === 0 && membership.pending === 0) beginExit();
  });
  membership.reserve(handoff.joinId);
  /** Synchronously stops being joinable (socket path unlinked), then exits soon after. */
  const beginExit = () => {
    if (!membership.closing) membership.close(socketPath);
    setTimeout(() => void exit(0), 10);
  };
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    // Unlink first: the path may be reused by a new daemon of the group while we drain.
    if (!membership.closing) membership.close(socketPath);
    await publisher.flush();
    publisher.close();
    await listener?.close();
    if (learner) learnCode(learner, served, log);
    log.info('shim exiting');
    log.close();
    process.exit(code);
  };

  const settler = memorySettler(log);
  /** The task API methods served, for the learned code cache. */
  const served = new Set<string>();
  for (const reason of learner?.notUsed ?? []) log.warn(`learned code cache not used: ${reason}`);
  const service = new TaskService({
    namespace: flags.namespace,
    publisher,
    log,
    // Answer the Shutdown call first, then go — unless a new group member is on its way.
    onShutdown: () => { if (membership.pending === 0) beginExit(); },
    onBundleCleaned: (bundle, initPid) => {
      try {
        writeCleanedRecord(bundle, initPid, socketPath);
      } catch (err) {
        log.warn(`${bundle}: no ${CLEANED_RECORD} record (the delete action will start node): ${(err as Error).message}`);
      }
    },
  });

  const services = membership.wrapCreateAndShutdown(taskServices(service, { log, bundleParent: path.dirname(bundle), onCall: (method, request) => {
    settler.noteActivity();
    served.add(method === 'Create' && (request as CreateTaskRequest).checkpoint ? RESTORE_METHOD : method);
  } }), (p) => CreateTaskRequest.decode(p).id);
  listener = new ShimListener([...services, membership.service()], {
    log: (level, msg) => log[level](msg),
  });
  await listener.listenFd(handoff.listenFd);
  // v8_cache: whether this daemon's code came from its learned cache (src/loader/learned-cache.ts).
  log.info('shim started', { socket: socketPath, v8_cache: learner?.cache });

  // Containers must outlive containerd: ignore the signals a terminal or service manager sends.
  for (const sig of ['SIGINT', 'SIGHUP', 'SIGPIPE'] as const) process.on(sig, () => log.debug(`ignored ${sig}`));
  process.on('SIGTERM', () => {
    // The Go shim exits on SIGTERM only when it holds no container.
    if (service.size === 0 && membership.pending === 0) void exit(0);
    else log.warn('SIGTERM ignored: containers are still running');
  });
  const diagnosticsDir = diagnosticsDirFromEnv();
  if (diagnosticsDir) {
    installDiagnostics({
      dir: diagnosticsDir,
      heapSnapshot: process.env.FERRY_DIAGNOSTICS_HEAP === '1',
      holds: () => ({ tasks: service.size, connections: listener?.connectionCount ?? 0 }),
      log: (msg) => log.info(msg),
    });
  }
  settler.start();
  process.on('uncaughtException', (err) => log.error(`uncaught exception: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) => log.error(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
}

/** Writes the learned code cache when this daemon's calls add to it; a failure costs only it. */
function learnCode(learner: CacheLearner, served: ReadonlySet<string>, log: Logger): void {
  const t0 = process.hrtime.bigint();
  try {
    const wrote = learner.learn(served);
    if (wrote) log.info(`learned code cache written: ${wrote.file} (${wrote.bytes} bytes, ${wrote.methods.join(',')}) in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`);
  } catch (err) {
    log.warn(`learned code cache not written: ${(err as Error).message}`);
  }
}

/** The daemon's memory settler: src/daemon/memory-settler.ts says why and when. */
const SETTLE = { firstDelayMs: 1000, trimIntervalMs: 2000, quietMs: 1000, gcIntervalMs: 2000, busyWaitMs: 1000 };

/** `gc` exists when the launcher gave node --expose-gc (shim/containerd-shim-ferry-v2). */
function memorySettler(log: Logger): MemorySettler {
  const gc = (globalThis as { gc?: () => void }).gc;
  return new MemorySettler({
    ...SETTLE,
    gc,
    reduce: () => { if (!lowMemoryNotification()) gc?.(); },
    trim: () => { mallocTrim(); },
    onSettled: (what, ms) => log.debug(`memory settled (${what}) in ${ms.toFixed(1)} ms`),
  });
}
