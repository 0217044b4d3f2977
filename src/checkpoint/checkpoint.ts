// Task.Checkpoint: `runc checkpoint` of a container's init into the directory containerd gives
// (which containerd then tars into its content store), as containerd-shim-runc-v2 does
// (pkg/process/init.go checkpoint). CRIU's logs stay in a work dir of ours, and a failure
// names the dump log and quotes its first error line.
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CheckpointOptions as RuncV1CheckpointOptions } from '../../api/gen/containerd/runc/v1/options';
import { CheckpointOptions as LinuxRuncCheckpointOptions } from '../../api/gen/containerd/linux/runc/runc';
import type { Any } from '../../api/gen/google/protobuf/any';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import type { Runc } from '../runc/runc';
import { RuntimeError } from '../runc/runtime-error';
import { typeName } from '../service/runtime-options';
import { assertCriuCanDumpTcp, ensureCriu } from './criu';
import { criuFailureLine } from './criu-log';
import { findTcpSockets } from './tcp-sockets';
import { criCheckpointCollectDir } from './cri-collect-dir';
import { ArchiveFile } from '../format/layout';
import type { WarnLogger } from '../format/warn-logger';

/** The checkpoint options of both option families, in one shape. */
export interface CheckpointConfig {
  exit: boolean;
  openTcp: boolean;
  externalUnixSockets: boolean;
  terminal: boolean;
  fileLocks: boolean;
  emptyNamespaces: string[];
  cgroupsMode: string;
  imagePath: string;
  workPath: string;
}

/**
 * Decodes CheckpointTaskRequest.options. containerd's Go client sends
 * containerd.runc.v1.CheckpointOptions for runc's runtime names and
 * containerd.linux.runc.CheckpointOptions for others (ferry's); the two number image_path and
 * work_path differently, so the type name decides. Generated codecs read fields by number.
 */
export function decodeCheckpointOptions(any: Any | undefined): CheckpointConfig {
  const empty: CheckpointConfig = {
    exit: false, openTcp: false, externalUnixSockets: false, terminal: false, fileLocks: false,
    emptyNamespaces: [], cgroupsMode: '', imagePath: '', workPath: '',
  };
  if (!any || (!any.typeUrl && any.value.length === 0)) return empty;
  switch (typeName(any)) {
    case 'containerd.runc.v1.CheckpointOptions': return { ...empty, ...RuncV1CheckpointOptions.decode(any.value) };
    case 'containerd.linux.runc.CheckpointOptions': return { ...empty, ...LinuxRuncCheckpointOptions.decode(any.value) };
    default:
      throw new InvalidArgumentError(`unsupported checkpoint options type ${JSON.stringify(any.typeUrl)}`);
  }
}

export const CRIU_MANAGE_CGROUPS_MODES = ['soft', 'full', 'strict'];

export interface CheckpointParams {
  id: string;
  bundle: string;
  runc: Runc;
  /** CheckpointTaskRequest.path: the directory containerd created for the image. */
  path: string;
  options: CheckpointConfig;
  /** Options.criu_path of the container (empty: `criu` from PATH). */
  criuPath: string;
  /** Options.criu_work_path of the container (empty: <bundle>/criu-work). */
  criuWorkPath: string;
  log?: WarnLogger;
}

/** Our CRIU work dir: the checkpoint's work_path, else the container's criu_work_path, else <bundle>/criu-work. */
export function criuWorkDir(bundle: string, ...preferred: string[]): string {
  return preferred.find((p) => p !== '') ?? path.join(bundle, 'criu-work');
}

/** Runs the checkpoint. With options.exit the container is gone afterwards (its exit is reaped as usual). */
export async function checkpointContainer(p: CheckpointParams): Promise<void> {
  const o = p.options;
  if (o.cgroupsMode && !CRIU_MANAGE_CGROUPS_MODES.includes(o.cgroupsMode)) {
    throw new InvalidArgumentError(`checkpoint: cgroups_mode ${JSON.stringify(o.cgroupsMode)} is not one of ${CRIU_MANAGE_CGROUPS_MODES.join(', ')}`);
  }
  const criu = await ensureCriu(p.criuPath);
  // What CRIU will be asked to dump that this CRIU cannot on this kernel: refused before it runs.
  // (If runc cannot list the processes, the dump would fail in runc with its own words.)
  await assertCriuCanDumpTcp(criu, async () => findTcpSockets(await p.runc.ps(p.id).catch(() => [])));
  // image_path (runc's CheckpointOptions) is where the user wants the image; containerd only
  // honours it itself for runc's runtime names, so ferry does the same for its own.
  const imagePath = o.imagePath || p.path;
  const workPath = criuWorkDir(p.bundle, o.workPath, p.criuWorkPath);
  // Relative paths would land in the daemon's working directory, /.
  for (const [field, value] of [['image path', imagePath], ['work path', workPath]]) {
    if (!path.isAbsolute(value)) throw new InvalidArgumentError(`checkpoint ${field} ${JSON.stringify(value)} is not absolute`);
  }
  const createdImageDir = await makeEmptyImageDir(imagePath);
  await fsp.mkdir(workPath, { recursive: true, mode: 0o700 });
  const dumpLog = path.join(workPath, 'dump.log');
  // A log left by an earlier dump must not be quoted for this one (CRIU may die before writing).
  await fsp.rm(dumpLog, { force: true });
  try {
    await p.runc.checkpoint(p.id, {
      imagePath, workPath, leaveRunning: !o.exit,
      tcpEstablished: o.openTcp, extUnixSk: o.externalUnixSockets, shellJob: o.terminal, fileLocks: o.fileLocks,
      emptyNamespaces: o.emptyNamespaces, manageCgroupsMode: o.cgroupsMode,
    });
  } catch (err) {
    // What CRIU wrote before it failed is no checkpoint: nobody may find and restore it.
    await removeImages(imagePath, createdImageDir);
    const runcLine = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const criuLine = await criuFailureLine(dumpLog);
    throw new RuntimeError(`${runcLine}; CRIU log ${dumpLog}${criuLine ? `: ${criuLine}` : ' (missing)'}`);
  }
  // containerd's CRI names a work path only for runc's runtime names; for ours it collects
  // CRIU's logs from its own container dir (cri-collect-dir.ts), so they go there too.
  if (!o.workPath) await copyLogsForCri(p, workPath);
}

/** CRIU's files a CRI checkpoint archive carries beside the images. */
const CRI_COLLECTED_FILES = [ArchiveFile.dumpLog, ArchiveFile.statsDump];

async function copyLogsForCri(p: CheckpointParams, workPath: string): Promise<void> {
  let spec: unknown;
  try {
    spec = JSON.parse(await fsp.readFile(path.join(p.bundle, 'config.json'), 'utf8'));
  } catch {
    return;
  }
  const dir = await criCheckpointCollectDir(spec as Parameters<typeof criCheckpointCollectDir>[0], p.id);
  if (!dir) return;
  for (const name of CRI_COLLECTED_FILES) {
    try {
      await copyNoFollow(path.join(workPath, name), path.join(dir, name));
      p.log?.debug?.('checkpoint: CRIU file copied for containerd CRI', { file: name, dir });
    } catch (err) {
      p.log?.warn('checkpoint: could not copy a CRIU file for containerd CRI', { file: name, dir, error: String(err) });
    }
  }
}

/** Copies a regular file; neither end may be a symlink, and the target is created 0600. */
async function copyNoFollow(from: string, to: string): Promise<void> {
  const src = await fsp.open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    if (!(await src.stat()).isFile()) throw new Error(`${from} is not a regular file`);
    const dst = await fsp.open(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, 0o600);
    try {
      if (!(await dst.stat()).isFile()) throw new Error(`${to} is not a regular file`);
      await dst.writeFile(await src.readFile());
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/**
 * The image dir must be empty: CRIU overwrites what it dumps and leaves the rest, so a dump into
 * an earlier checkpoint's dir mixes the two, and a failed one leaves neither whole. Returns
 * whether the dir was created here.
 */
async function makeEmptyImageDir(imagePath: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await fsp.readdir(imagePath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await fsp.mkdir(imagePath, { recursive: true, mode: 0o700 });
    return true;
  }
  if (entries.length > 0) {
    throw new FailedPreconditionError(`checkpoint image path ${imagePath} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}): a dump there would mix with what it holds`);
  }
  return false;
}

/** Removes a failed dump's images: the dir's content (it was empty before), and the dir if it was ours. */
async function removeImages(imagePath: string, createdHere: boolean): Promise<void> {
  if (createdHere) {
    await fsp.rm(imagePath, { recursive: true, force: true });
    return;
  }
  for (const name of await fsp.readdir(imagePath).catch(() => [] as string[])) {
    await fsp.rm(path.join(imagePath, name), { recursive: true, force: true });
  }
}
