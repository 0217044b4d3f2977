// `ferry checkpoint`: one running container → a Kubernetes-layout archive and/or a checkpoint
// OCI image (optionally pushed), through containerd's API only.
//
// Order, chosen so that a failure changes nothing and the source is never lost:
//   1. check everything that can be checked before touching the container (the export path,
//      the image name, the container and its task);
//   2. pause, CRIU dump (leave running), diff the writable layer, copy the log — all while paused;
//   3. --leave-running: resume now; otherwise the container stays frozen;
//   4. write the archive under a temporary name, make the image, push it;
//   5. only then: put the archive in place, and (without --leave-running) stop the container.
// A failure in 2–4 resumes the container (if we paused it), removes the image we made, the
// temporary archive, the staging directory and the lease (so containerd collects every blob and
// view made for it). Staging is a private 0700 directory laid out as an unpacked archive
// (checkpoint/, dump.log, stats-dump), which is also how CRIU's facts and statistics are read.
import { createReadStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errorReason } from '../cli-error';
import { Connection, containerdVersion, containerSpec, createLease, DEFAULT_SNAPSHOTTER, deleteImage, deleteLease, findContainer, findImage } from '../containerd';
import { pushImage, type TransferProgress } from '../containerd/transfer';
import { AlreadyExistsError, Code, FerryError, InternalError, InvalidArgumentError, NotFoundError } from '../../errors';
import { archiveStream, checkpointArchiveEntries, tarSize, type DigestStream } from '../../format/checkpoint-archive-writer';
import type { ArchiveCompression } from '../../format/compression';
import { DirImageStore } from '../../format/criu/image-store';
import { readStats } from '../../format/criu/images';
import { ArchiveFile } from '../../format/layout';
import type { Progress } from '../progress';
import { checkpointImageAnnotations, createCheckpointImage, type CheckpointImage } from './checkpoint-image';
import { hostFacts } from './host-facts';
import { buildMetadata } from './metadata';
import { OutputFile } from './output-file';
import { dumpFailureCause, TaskDump } from './task-dump';
import { exportWritableLayer, type WritableLayer } from './writable-layer';

export interface CheckpointRequest {
  containerId: string;
  exportFile?: string;
  compression: ArchiveCompression;
  createImage?: string;
  push: boolean;
  leaveRunning: boolean;
  tcpEstablished: boolean;
  fileLocks: boolean;
  printStats: boolean;
  /** Replace an existing --export file or image name. */
  force: boolean;
  /**
   * Runs once the checkpoint is complete (archive in place, image made and pushed) and before the
   * container is stopped — `ferry migrate` restores on the destination here. If it throws, the
   * container is resumed, as after any other failure, and the error propagates.
   */
  beforeStop?: () => Promise<void>;
  /** containerd 2.x: hosts.toml directory (certs.d layout) and plain HTTP for the push. */
  hostsDir?: string;
  plainHttp?: boolean;
  /**
   * Abandons the checkpoint (Ctrl-C) at its next safe point — between steps, or while the
   * archive is written: what was made is removed and the container resumed, as after a failure.
   */
  signal?: AbortSignal;
}

/** The checkpoint was interrupted before it was complete; nothing of it was kept. */
export class CheckpointInterruptedError extends FerryError {
  constructor(message: string) { super(Code.Canceled, message); }
}

/** CRIU's dump statistics, under checkpointctl's JSON names (µs and pages). */
export interface DumpStatistics {
  freezing_time: number;
  frozen_time: number;
  memdump_time: number;
  memwrite_time: number;
  pages_scanned: number;
  pages_written: number;
}

export interface CheckpointResult {
  id: string;
  name: string;
  export?: { path: string; compression: ArchiveCompression; size: number; uncompressedSize: number };
  image?: CheckpointImage & { pushed: boolean };
  leftRunning: boolean;
  stopped: boolean;
  rootfsDiff?: { entries: number; deletedFiles: string[] };
  statistics?: DumpStatistics;
  durationMs: number;
  /** Where the time went (ms): checks, pause, dump, writableLayer (what the diff took beyond the dump it runs beside), resume, archive, image, push, stop. */
  timings: Record<string, number>;
}

/** Options that contradict each other or are missing, before anything is touched. */
export function checkRequest(r: CheckpointRequest): void {
  if (!r.exportFile && !r.createImage) {
    throw new InvalidArgumentError('nothing to write the checkpoint to: give --export FILE, --create-image REF, or both');
  }
  if (r.push && !r.createImage) throw new InvalidArgumentError('--push needs --create-image REF (the image to push)');
  if ((r.hostsDir || r.plainHttp) && !r.push) throw new InvalidArgumentError('--hosts-dir and --plain-http only apply to --push');
  if (r.createImage !== undefined && !/^[a-z0-9][a-z0-9._:/@-]*$/i.test(r.createImage)) {
    throw new InvalidArgumentError(`--create-image ${JSON.stringify(r.createImage)} is not an image reference`);
  }
}

/** The container's log file, when its task writes to one (`file://` log URI) or CRI names one. */
function logFileOf(stdout: string | undefined, criLogPath: string | undefined): string | undefined {
  if (criLogPath) return criLogPath;
  if (stdout?.startsWith('file://')) return decodeURIComponent(new URL(stdout).pathname);
  return undefined;
}

async function copyLog(src: string | undefined, dst: string): Promise<string | undefined> {
  if (!src) return undefined;
  const st = await fsp.lstat(src).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  await fsp.copyFile(src, dst);
  await fsp.chmod(dst, 0o600);
  return dst;
}

function statistics(stats: Awaited<ReturnType<typeof readStats>>): DumpStatistics {
  const d = stats.dump;
  return {
    freezing_time: d?.freezingTime ?? 0, frozen_time: d?.frozenTime ?? 0, memdump_time: d?.memdumpTime ?? 0,
    memwrite_time: d?.memwriteTime ?? 0, pages_scanned: Number(d?.pagesScanned ?? 0), pages_written: Number(d?.pagesWritten ?? 0),
  };
}

export async function checkpoint(conn: Connection, r: CheckpointRequest, progress: Progress): Promise<CheckpointResult> {
  const started = Date.now();
  const timings: Record<string, number> = {};
  let lapStart = started;
  const lap = (phase: string) => { const now = Date.now(); timings[phase] = (timings[phase] ?? 0) + now - lapStart; lapStart = now; };
  checkRequest(r);
  const output = r.exportFile ? await OutputFile.prepare(r.exportFile, r.force) : undefined;
  // Independent look-ups go out together (each is a round trip to containerd).
  const [container, existingImage, server] = await Promise.all([
    findContainer(conn, r.containerId),
    r.createImage && !r.force ? findImage(conn, r.createImage) : undefined,
    r.createImage ? containerdVersion(conn).catch(() => undefined) : undefined,
  ]);
  if (!container) throw new NotFoundError(`no container ${JSON.stringify(r.containerId)} in namespace ${JSON.stringify(conn.namespace)}`);
  if (existingImage) throw new AlreadyExistsError(`image ${r.createImage} already exists (use --force to replace it)`);
  if ((r.hostsDir || r.plainHttp) && server && server.major < 2) {
    // 1.7.24's Transfer service takes neither from a request and would ignore them silently.
    throw new InvalidArgumentError(`containerd ${server.version} reads no --hosts-dir or --plain-http in a push: trust the registry's CA in containerd's environment instead (docs/ferry-cli.md, Registries)`);
  }
  const spec = containerSpec(container);
  const baseImage = container.image ? await findImage(conn, container.image) : undefined;

  // The lease outlives a ferry that is killed outright only by a few hours (then containerd collects).
  const leaseId = await createLease(conn, { 'io.ferry/checkpoint': container.id }, 4 * 3600);
  const leased = conn.withLease(leaseId);
  const stage = await fsp.mkdtemp(path.join(os.tmpdir(), 'ferry-checkpoint-'));
  await fsp.chmod(stage, 0o700);
  const imagesDir = path.join(stage, ArchiveFile.checkpointDir);
  let dump: TaskDump | undefined;
  let running = true; // the container still runs (paused or not): a failure must resume it
  let image: CheckpointImage | undefined;
  // Set once the archive is in place: from then on the checkpoint exists and is not undone.
  let committed = false;
  const proceed = () => {
    if (r.signal?.aborted) throw new CheckpointInterruptedError('interrupted: nothing of the checkpoint was kept and the container was left as it was');
  };
  try {
    lap('checks');
    proceed();
    dump = await TaskDump.pause(leased, container.id);
    lap('pause');
    proceed();
    const checkpointedAt = new Date();
    let layer: WritableLayer | undefined;
    let containerLog: string | undefined;
    const metadata = buildMetadata({ container, spec, imageDigest: baseImage?.target?.digest, checkpointedAt });
    try {
      // While the task is paused, CRIU's dump and the diff of the writable layer only read it:
      // they run side by side. A failure of either waits for the other before it is reported.
      const dumped = dump.dump({ imagesDir, workDir: stage, tcpEstablished: r.tcpEstablished, fileLocks: r.fileLocks }).then(
        () => lap('dump'),
        async (err: unknown) => {
          const cause = await dumpFailureCause(path.join(stage, ArchiveFile.dumpLog));
          if (!cause) throw err;
          throw new InternalError(`CRIU could not dump container ${JSON.stringify(container.id)}: ${cause}; the container was left as it was`, { cause: err });
        });
      const diffed = exportWritableLayer(leased, container, path.join(stage, ArchiveFile.rootfsDiffTar));
      const [dumpResult, layerResult] = await Promise.allSettled([dumped, diffed]);
      if (dumpResult.status === 'rejected') throw dumpResult.reason;
      if (layerResult.status === 'rejected') throw layerResult.reason;
      layer = layerResult.value;
      containerLog = await copyLog(logFileOf(dump.process?.stdout, metadata.statusDump.log_path), path.join(stage, ArchiveFile.containerLog));
      lap('writableLayer');
    } finally {
      if (r.leaveRunning) await dump.resume();
      lap('resume');
    }
    proceed();
    const present = async (name: string) => ((await fsp.lstat(path.join(stage, name)).catch(() => undefined))?.isFile() ? path.join(stage, name) : undefined);
    const entries = await checkpointArchiveEntries({
      configDump: metadata.configDump,
      specDump: metadata.specDump,
      statusDump: metadata.statusDump,
      imagesDir,
      rootfsDiffTar: layer ? path.join(stage, ArchiveFile.rootfsDiffTar) : undefined,
      deletedFiles: layer ? layer.deletedFiles : undefined,
      dumpLog: await present(ArchiveFile.dumpLog),
      statsDump: await present(ArchiveFile.statsDump),
      containerLog,
      time: checkpointedAt,
    });
    const total = tarSize(entries);

    let exported: CheckpointResult['export'];
    let exportedDigest: DigestStream | undefined;
    if (output) {
      progress.start('export', total);
      // The uncompressed digest is only needed as an image layer's diff_id.
      const archive = archiveStream(entries, { compression: r.compression, digest: r.createImage !== undefined, onProgress: (n) => progress.update(n) });
      const fh = await output.open();
      try {
        await pipeline(archive.stream, fh.createWriteStream(), { signal: r.signal });
        const size = (await fsp.stat(output.tempPath)).size;
        exported = { path: output.finalPath, compression: r.compression, size, uncompressedSize: archive.uncompressed.bytes };
        exportedDigest = archive.uncompressed;
      } catch (err) {
        await output.discard();
        throw err;
      } finally {
        await fh.close().catch(() => undefined);
        progress.stop();
        lap('archive');
      }
    }

    if (r.createImage) {
      proceed();
      const facts = await hostFacts(stage, server?.version);
      const annotations = checkpointImageAnnotations({
        containerName: metadata.name, runtimeName: container.runtime?.name, baseImageName: container.image || undefined,
        baseImageRef: metadata.configDump.rootfsImageRef, host: facts, created: checkpointedAt,
      });
      progress.start('image', output ? exported!.size : total);
      // With --export the layer is the archive just written (same bytes); else it is made now.
      const fresh = output ? undefined : archiveStream(entries, { compression: r.compression, onProgress: (n) => progress.update(n) });
      const layerBytes = output ? createReadStream(output.tempPath, { highWaterMark: 1024 * 1024 }) : fresh!.stream;
      const stopLayer = () => layerBytes.destroy(new CheckpointInterruptedError('interrupted'));
      r.signal?.addEventListener('abort', stopLayer, { once: true });
      try {
        image = await createCheckpointImage(leased, {
          name: r.createImage, layer: layerBytes, uncompressed: fresh ? fresh.uncompressed : exportedDigest!,
          compression: r.compression, annotations, created: checkpointedAt, snapshotter: container.snapshotter || DEFAULT_SNAPSHOTTER,
          onProgress: fresh ? undefined : (n) => progress.update(n),
        });
      } finally {
        r.signal?.removeEventListener('abort', stopLayer);
        progress.stop();
        lap('image');
      }
      if (r.push) {
        proceed();
        progress.start('push', 0);
        try {
          await pushImage(conn, image.name, image.name, {
            hostDir: r.hostsDir, defaultScheme: r.plainHttp ? 'http' : undefined,
            onProgress: (p: TransferProgress) => progress.update(p.done, p.total),
          });
        } finally {
          progress.stop();
          lap('push');
        }
      }
    }

    let statisticsResult: DumpStatistics | undefined;
    if (r.printStats) statisticsResult = statistics(await readStats(new DirImageStore(stage), ArchiveFile.statsDump));

    proceed();
    if (output) await output.commit();
    // migrate restores on the target here: if that fails, nothing is committed and the
    // source is resumed below, as for any other failure before this point.
    if (r.beforeStop) await r.beforeStop();
    committed = true;
    let stopped = false;
    if (!r.leaveRunning) {
      running = false;
      try {
        await dump.stop();
      } catch (err) {
        const where = [exported && exported.path, image && image.name].filter(Boolean).join(' and ');
        throw new InternalError(`the checkpoint is complete (${where}), but stopping container ${JSON.stringify(container.id)} failed: ${errorReason(err)}`, { cause: err });
      }
      stopped = true;
      lap('stop');
    }
    return {
      id: container.id,
      name: metadata.name,
      ...(exported ? { export: exported } : {}),
      ...(image ? { image: { ...image, pushed: r.push } } : {}),
      leftRunning: r.leaveRunning,
      stopped,
      ...(layer ? { rootfsDiff: { entries: layer.entries, deletedFiles: layer.deletedFiles } } : {}),
      ...(statisticsResult ? { statistics: statisticsResult } : {}),
      durationMs: Date.now() - started,
      timings,
    };
  } catch (err) {
    if (!committed) {
      await output?.discard();
      if (image) await deleteImage(conn, image.name, true).catch(() => undefined);
      if (dump && running && !r.leaveRunning) await dump.resume().catch(() => undefined);
    }
    if (!committed && r.signal?.aborted) throw new CheckpointInterruptedError('interrupted: nothing of the checkpoint was kept and the container was left as it was');
    throw err;
  } finally {
    await deleteLease(conn, leaseId, true).catch(() => undefined);
    await fsp.rm(stage, { recursive: true, force: true }).catch(() => undefined);
  }
}
