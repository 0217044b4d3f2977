// `ferry restore`: a checkpoint archive (any engine's) or checkpoint image becomes a running
// container in containerd. Everything that can be checked without touching containerd is
// checked first (the archive is staged by the checkpoint staging rules, the CRIU images
// verified, config.dump and spec.dump read, the name checked); only then are the base image,
// snapshot, container record and task made, each with its undo, so a failure at any step leaves
// nothing behind: no container record, snapshot, task, lease, mount or staging directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../errors';
import { stageCheckpointArchive, stageCheckpointStream } from '../../format/archive-staging';
import { DirImageStore } from '../../format/criu/image-store';
import { verifyCriuImages } from '../../format/criu/verify';
import { ArchiveFile } from '../../format/layout';
import type { WarnLogger } from '../../format/warn-logger';
import {
  containerdVersion, createContainer, createLease, deleteContainer, deleteLease, findContainer, removeSnapshot,
  specAny, DEFAULT_SNAPSHOTTER, type Connection,
} from '../containerd';
import { findBaseImage, pullBaseImage, type PullImage } from './base-image';
import { checkpointImageLayer, readLayer } from './checkpoint-image-source';
import { readCheckpointMetadata, type CheckpointMetadata } from './checkpoint-metadata';
import { ContainerState, containersDir, gcContainerStates, STATE_DIR_LABEL } from './container-state';
import { ensureUnpacked } from './image-snapshot';
import { startLogCopier, type ContainerStdio } from './log-copier';
import { adaptSpec } from './restored-spec';
import { createRestoredTask, removeTask } from './restore-task';
import { prepareRestoredRootfs, type RootfsChanges } from './rootfs';
import { readRestoreStats, type RestoreStats } from './restore-stats';
import { matchRootMode, recordedRootMode } from './root-mode';

export const FERRY_RUNTIME = 'io.containerd.ferry.v2';

export type RestoreSource = { kind: 'archive'; path: string } | { kind: 'image'; ref: string };

export interface RestoreOptions {
  source: RestoreSource;
  /** New container id; default the checkpoint's container name. */
  name?: string;
  runtime?: string;
  snapshotter?: string;
  tcpEstablished?: boolean;
  /** Restore the file locks the checkpoint holds (CRIU drops them silently without it). */
  fileLocks?: boolean;
  /** Pulls a reference through containerd (base images, checkpoint images). */
  pull?: PullImage;
  /** ferry's state directory (per-container files, staging). */
  stateRoot: string;
  log: WarnLogger;
  /** The task's stdio (FIFO paths), e.g. `ferry run` attached; default: FIFOs drained into the container's log by a detached copier. */
  stdio?: { stdin?: string; stdout?: string; stderr?: string };
  /** Bytes of the source read so far, of `total` (for a progress bar). */
  onProgress?: (read: number, total: number) => void;
  /** Read CRIU's restore statistics (stats-restore) into the result. */
  collectStats?: boolean;
}

export interface RestoreResult {
  id: string;
  engine: string;
  /** The checkpoint's container name. */
  checkpointName: string;
  image: string;
  imagePulled: boolean;
  checkpointImage?: string;
  runtime: string;
  pid: number;
  rootfs: RootfsChanges;
  warnings: string[];
  /** CRIU's restore statistics, when asked for and written. */
  stats?: RestoreStats;
  /** The file the container's stdout and stderr go to (without o.stdio). */
  log?: string;
  /** From the first containerd call to the result (ms). */
  durationMs: number;
  /** Where the time went (ms): stage (archive or image into the staging directory), check (CRIU images, metadata, name), baseImage (look-up, pull, unpack), prepare (state, stdio, spec), rootfs (snapshot and its layers), container, task (Tasks.Create, and Start on 1.7). */
  timings: Record<string, number>;
}

/** containerd's identifier rule (pkg/identifiers): alphanumerics joined by single . _ -, at most 76. */
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export function checkContainerId(id: string, from: string): void {
  if (id.length === 0 || id.length > 76 || !IDENTIFIER.test(id)) {
    throw new InvalidArgumentError(`${JSON.stringify(id)} (${from}) is not a valid container id: letters and digits joined by '.', '_' or '-', at most 76 characters; give one with --name`);
  }
}

/** Undo steps, run newest first. */
class Rollback {
  private readonly steps: { what: string; run: () => Promise<unknown> }[] = [];
  add(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }
  async run(log: WarnLogger): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.run();
      } catch (err) {
        log.warn(`cleanup: ${s.what} failed: ${(err as { details?: string }).details ?? (err as Error).message}`);
      }
    }
    this.steps.length = 0;
  }
}

/** A log that also remembers the warnings (they are part of the result). */
function recording(log: WarnLogger, into: string[]): WarnLogger {
  return { warn: (m, meta) => { into.push(m); log.warn(m, meta); }, debug: log.debug?.bind(log) };
}

async function stage(conn: Connection, o: RestoreOptions, stagingParent: string, log: WarnLogger): Promise<{ dir: string; checkpointImage?: string; pulled: boolean }> {
  if (o.source.kind === 'archive') {
    const file = o.source.path;
    const st = await fs.promises.stat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new NotFoundError(`checkpoint archive ${file} does not exist`);
      throw err;
    });
    if (!st.isFile()) throw new InvalidArgumentError(`checkpoint archive ${file} is not a regular file`);
    const onRead = o.onProgress ? (n: number) => o.onProgress!(n, st.size) : undefined;
    return { dir: (await stageCheckpointArchive(file, stagingParent, log, { onRead })).dir, pulled: false };
  }
  const img = await checkpointImageLayer(conn, o.source.ref, o.pull);
  let read = 0;
  const counted = (async function* () {
    for await (const chunk of readLayer(conn, img.layer)) {
      read += chunk.length;
      o.onProgress?.(read, img.layer.size);
      yield chunk;
    }
  })();
  const staged = await stageCheckpointStream(counted, `checkpoint image ${img.image}`, stagingParent, log);
  return { dir: staged.dir, checkpointImage: img.image, pulled: img.pulled };
}

async function checkImages(dir: string): Promise<void> {
  const images = path.join(dir, ArchiveFile.checkpointDir);
  const st = await fs.promises.lstat(images).catch(() => undefined);
  if (!st?.isDirectory()) throw new InvalidArgumentError(`the checkpoint has no ${ArchiveFile.checkpointDir}/ directory (no CRIU images)`);
  const report = await verifyCriuImages(new DirImageStore(images));
  if (!report.ok) {
    const problems = report.problems.slice(0, 3).map((p) => `${path.basename(p.file)}: ${p.problem}`).join('; ');
    throw new InvalidArgumentError(`the checkpoint's CRIU images are incomplete: ${problems}${report.problems.length > 3 ? ` (and ${report.problems.length - 3} more)` : ''}`);
  }
}

function warnAboutExtras(meta: CheckpointMetadata, dir: string, log: WarnLogger): void {
  if (fs.existsSync(path.join(dir, ArchiveFile.volumesDir))) {
    log.warn(`the checkpoint holds ${meta.engine}'s named volumes (${ArchiveFile.volumesDir}/); ferry does not restore volumes`);
  }
}

/** The restore's failure with CRIU's own first error from restore.log (the log goes with the work dir). */
async function withCriuLog(err: unknown, workDir: string): Promise<unknown> {
  const log = await fs.promises.readFile(path.join(workDir, ArchiveFile.restoreLog), 'utf8').catch(() => '');
  // CRIU cannot raise its own RLIMIT_NOFILE in a container whose hard limit is lower: it says so
  // as an Error and carries on; it is never the cause.
  const errors = log.split('\n').filter((l) => /Error \(/.test(l) && !/RLIMIT_NOFILE for self/.test(l)).slice(0, 2)
    .map((l) => l.replace(/^\(\d+\.\d+\)\s*(\d+:\s*)?/, '').trim());
  if (errors.length === 0) return err;
  const e = err as { details?: string; message?: string };
  // The log file named by runc (Go shim: `log file: PATH`; ferry's shim, last: `CRIU log PATH: line`)
  // goes with ferry's work dir: quote it instead of naming it.
  const reason = (e.details ?? e.message ?? String(err)).replace(/;? ?log file: \S+(: unknown)?|;? ?CRIU log \S+.*$|; unknown$/g, '').replace(/[;\s]+$/, '');
  const text = `${reason}; CRIU: ${errors.join('; ')}`;
  return Object.assign(new Error(text), { details: text, code: (err as { code?: number }).code });
}

export async function restoreCheckpoint(conn: Connection, o: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const timings: Record<string, number> = {};
  let lapStart = started;
  const lap = (phase: string) => { const now = Date.now(); timings[phase] = (timings[phase] ?? 0) + now - lapStart; lapStart = now; };
  const warnings: string[] = [];
  const log = recording(o.log, warnings);
  const runtime = o.runtime ?? FERRY_RUNTIME;
  const snapshotter = o.snapshotter ?? DEFAULT_SNAPSHOTTER;
  // Needed only for the task: asked now, answered while the archive is staged.
  const versionAsked = containerdVersion(conn);
  versionAsked.catch(() => undefined);
  const undo = new Rollback();
  const work = path.join(o.stateRoot, 'staging', `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`);
  await fs.promises.mkdir(work, { recursive: true, mode: 0o700 });
  try {
    // 1. The checkpoint itself, checked before containerd is touched.
    const staged = await stage(conn, o, work, log);
    lap('stage');
    const imagesChecked = checkImages(staged.dir);
    imagesChecked.catch(() => undefined); // weighed below, first
    const meta = await readCheckpointMetadata(staged.dir).catch(async (err: unknown) => { await imagesChecked; throw err; });
    const id = o.name ?? meta.name;
    checkContainerId(id, o.name ? '--name' : `the checkpoint's container name`);
    // Read-only look-ups (the name, the base image in the store) travel while the CRIU images are
    // verified; their answers are weighed in the order the checks have always had.
    const [imagesOk, named, local] = await Promise.allSettled([imagesChecked, findContainer(conn, id), findBaseImage(conn, meta.baseImage)]);
    if (imagesOk.status === 'rejected') throw imagesOk.reason;
    if (named.status === 'rejected') throw named.reason;
    if (named.value) {
      throw new AlreadyExistsError(`a container named ${id} already exists${o.name ? '' : ' (the checkpoint\'s name; choose another with --name)'}`);
    }
    warnAboutExtras(meta, staged.dir, log);
    const containers = containersDir(o.stateRoot, conn.address, conn.namespace);
    const collected = gcContainerStates(containers, async (cid) => cid === id || (await findContainer(conn, cid)) !== undefined);
    collected.catch(() => undefined);

    lap('check');
    // 2. The base image (pulled only when it is not in the store), unpacked for the snapshotter.
    if (local.status === 'rejected') throw local.reason;
    const base = local.value ? { image: local.value, pulled: false } : await pullBaseImage(conn, meta.baseImage, o.pull);
    const parent = await ensureUnpacked(conn, snapshotter, base.image);
    await collected;
    lap('baseImage');

    // 3. Host-side state, spec, root file system, container record — each undone on failure.
    const lease = await createLease(conn, { 'io.ferry.restore': id });
    undo.add(`lease ${lease}`, () => deleteLease(conn, lease, true));
    const leased = conn.withLease(lease);
    const state = new ContainerState(path.join(containers, id));
    await state.create();
    undo.add(`state directory ${state.dir}`, () => state.remove());
    // The detached task's stdio: FIFOs and the copiers into its log (log-copier.ts).
    let copier: ContainerStdio | undefined;
    if (!o.stdio) {
      copier = await startLogCopier(state.dir);
      undo.add('log copier', async () => copier!.kill());
    }
    const criuOptions = [...(o.tcpEstablished ? ['tcp-established'] : []), ...(o.fileLocks ? ['file-locks'] : [])];
    const criuConfig = criuOptions.length > 0 ? path.join(state.dir, 'criu.conf') : undefined;
    if (criuConfig) await fs.promises.writeFile(criuConfig, criuOptions.map((opt) => `${opt}\n`).join(''), { mode: 0o600 });
    const spec = await adaptSpec(meta.spec, { id, namespace: conn.namespace, netnsPath: () => state.newNetworkNamespace(), criuConfigFile: criuConfig, log });
    await state.substituteMissingSources(spec, staged.dir, log);
    // The shim checks the spec saved beside the images (`<images>/../spec.dump`, the CRI layout)
    // against the container's: it must see the checkpoint as ferry adapted it (no pod, the new
    // network namespace), or a pod's checkpoint could never be restored standalone.
    await fs.promises.writeFile(path.join(staged.dir, ArchiveFile.specDump), JSON.stringify(spec), { mode: 0o600 });

    lap('prepare');
    undo.add(`snapshot ${id}`, () => removeSnapshot(conn, snapshotter, id));
    const { changes, mounts } = await prepareRestoredRootfs(leased, snapshotter, id, parent, staged.dir, {});
    const rootMode = await recordedRootMode(path.join(staged.dir, ArchiveFile.checkpointDir));
    if (rootMode !== undefined && !(await matchRootMode(mounts, rootMode))) {
      log.warn(`cannot give the root directory the mode CRIU recorded (${rootMode.toString(8)}) with snapshotter ${snapshotter}`);
    }
    // containerd 2.x applies <images>/../rootfs-diff.tar itself on a RestoreFromPath restore:
    // the snapshot has it already.
    await fs.promises.rm(path.join(staged.dir, ArchiveFile.rootfsDiffTar), { force: true });

    lap('rootfs');
    const labels: Record<string, string> = { [STATE_DIR_LABEL]: state.dir, 'io.ferry.restored-from': o.source.kind === 'archive' ? path.resolve(o.source.path) : o.source.ref };
    await createContainer(leased, {
      id, image: base.image.name, labels, runtime: { name: runtime }, spec: specAny(spec), snapshotter, snapshotKey: id,
    });
    undo.add(`container ${id}`, () => deleteContainer(conn, id));
    lap('container');

    // 4. The task, from the CRIU images, through the shim's restore path.
    undo.add(`task ${id}`, () => removeTask(conn, id));
    const workDir = path.join(work, 'criu-work');
    await fs.promises.mkdir(workDir, { mode: 0o700 });
    let stdio = o.stdio;
    if (copier) stdio = { stdin: copier.stdin, stdout: copier.stdout, stderr: copier.stderr };
    const pid = await createRestoredTask(conn, await versionAsked, {
      containerId: id, rootfs: mounts, imagePath: path.join(staged.dir, ArchiveFile.checkpointDir), workPath: workDir, ...stdio,
    }).catch(async (err: unknown) => { throw await withCriuLog(err, workDir); });
    copier?.release();
    lap('task');
    await deleteLease(conn, lease).catch(() => undefined);
    const stats = o.collectStats ? await readRestoreStats(workDir).catch(() => undefined) : undefined;
    return {
      id, engine: meta.engine, checkpointName: meta.name, image: base.image.name, imagePulled: base.pulled,
      checkpointImage: staged.checkpointImage, runtime, pid, rootfs: changes, warnings, ...(stats ? { stats } : {}), ...(copier ? { log: copier.log } : {}),
      durationMs: Date.now() - started, timings,
    };
  } catch (err) {
    await undo.run(o.log);
    throw err;
  } finally {
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}
