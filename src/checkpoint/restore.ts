// Create-with-checkpoint: everything decided and checked before a restore is recorded. As in
// containerd-shim-runc-v2, Create only records the restore and Start runs `runc restore`
// (see restored-init.ts). Every refusal happens here, before the rootfs is mounted or any
// process exists, and leaves no staging directory behind.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import type { RuntimeOptions } from '../service/runtime-options';
import { mergeRestoredAnnotations } from '../format/annotations';
import { isArchiveFile, removeStagingDir, stageCheckpointArchive } from '../format/archive-staging';
import { assertOnlyRegularFilesAndDirs } from '../format/checkpoint-dir-check';
import { assertCriuImagesComplete } from '../format/criu/verify';
import { criuWorkDir } from './checkpoint';
import { ensureCriu, type CriuInfo } from './criu';
import { readCheckpointJson } from '../format/safe-read';
import { CRI_RESTORE_CHECKPOINT_SUBDIR } from '../format/layout';
import { checkPidNamespaceFromImages } from './pid-namespace-from-images';
import type { WarnLogger } from '../format/warn-logger';

/** The parts of an OCI spec the restore checks look at. */
export interface SpecForRestore {
  annotations?: Record<string, string>;
  linux?: { namespaces?: { type: string; path?: string }[] };
}

export interface RestorePlan {
  /** The CRIU image directory runc restore reads (ours when staged). */
  imagePath: string;
  /** CRIU work dir: Options.criu_work_path, else <bundle>/criu-work. */
  workPath: string;
  /** True when imagePath is <bundle>/ctrd-restore, which we remove after the restore. */
  staged: boolean;
  criu: CriuInfo;
}

export interface RestoreRequest {
  bundle: string;
  /** CreateTaskRequest.checkpoint: a directory (containerd unpacked it) or an archive file. */
  checkpoint: string;
  parentCheckpoint: string;
  options: RuntimeOptions;
  log: WarnLogger;
}

/** Annotations that mark a container as a member of a Kubernetes pod (containerd's CRI, CRI-O). */
export const SANDBOX_ANNOTATIONS = [
  'io.kubernetes.cri.sandbox-id',
  'io.kubernetes.cri.sandbox-name',
  'io.kubernetes.cri-o.SandboxID',
  'io.kubernetes.cri-o.SandboxName',
];

/** Namespaces (OCI type names) whose sharing must match between checkpoint and target. */
export const CHECKED_NAMESPACES = ['ipc', 'network', 'pid', 'uts', 'cgroup'];

type NsMode = 'host' | 'private' | 'shared';

function nsMode(spec: SpecForRestore, type: string): NsMode {
  const ns = (spec.linux?.namespaces ?? []).find((n) => n && n.type === type);
  if (!ns) return 'host';
  return typeof ns.path === 'string' && ns.path !== '' ? 'shared' : 'private';
}

function sandboxId(spec: SpecForRestore): string | undefined {
  const a = spec.annotations ?? {};
  for (const k of SANDBOX_ANNOTATIONS) {
    if (typeof a[k] === 'string' && a[k] !== '') return `${k}=${a[k]}`;
  }
  return undefined;
}

/**
 * Refuses a restore whose checkpoint was taken in a different setting than the target: inside
 * a pod vs outside one, or with a namespace (ipc, net, pid, uts, cgroup) shared with another
 * container (path set) in one and not the other. CRIU would otherwise restore a process into
 * namespaces it does not belong to, or fail half-way.
 */
export function checkRestoreCompatibility(saved: SpecForRestore, target: SpecForRestore): void {
  const savedPod = sandboxId(saved);
  const targetPod = sandboxId(target);
  if (savedPod && !targetPod) {
    throw new FailedPreconditionError(`restore refused: the checkpoint was taken inside a pod (${savedPod}) and the target container is not in one`);
  }
  if (!savedPod && targetPod) {
    throw new FailedPreconditionError(`restore refused: the checkpoint was taken outside a pod and the target container is in one (${targetPod})`);
  }
  for (const type of CHECKED_NAMESPACES) {
    const s = nsMode(saved, type);
    const t = nsMode(target, type);
    if (s !== t) {
      throw new FailedPreconditionError(`restore refused: the checkpoint's ${type} namespace is ${s}, the target's is ${t}`);
    }
  }
}

/** The spec saved in a checkpoint (spec.dump, else config.dump), or undefined if it holds none. */
export async function readSavedSpec(dir: string): Promise<SpecForRestore | undefined> {
  for (const name of ['spec.dump', 'config.dump']) {
    let v: unknown;
    try {
      v = await readCheckpointJson(dir, name);
    } catch (err) {
      if (err instanceof NotFoundError) continue;
      throw err;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      throw new InvalidArgumentError(`checkpoint ${name} is not a JSON object`);
    }
    const o = v as Record<string, unknown>;
    // config.dump in Kubernetes archives is a container config, not an OCI spec; it only
    // counts when it carries the fields compared here.
    if (name === 'config.dump' && !('annotations' in o) && !('linux' in o)) continue;
    if (o.annotations !== undefined && (typeof o.annotations !== 'object' || o.annotations === null || Array.isArray(o.annotations))) {
      throw new InvalidArgumentError(`checkpoint ${name}: annotations is not an object`);
    }
    return o as SpecForRestore;
  }
  return undefined;
}

/**
 * The saved spec of the checkpoint whose CRIU images are in `imagePath`. containerd's CRI
 * restores (CreateContainer with a checkpoint image) by unpacking the whole checkpoint into
 * `<container root>/ctrd-restore/` and handing the shim its `checkpoint/` subdirectory: the
 * images are there, spec.dump is one level up. Both places are read without following links
 * (readCheckpointJson). From an archive path containerd leaves spec.dump out of ctrd-restore;
 * then there is none (undefined).
 */
export async function findSavedSpec(imagePath: string): Promise<SpecForRestore | undefined> {
  const own = await readSavedSpec(imagePath);
  if (own || path.basename(imagePath) !== CRI_RESTORE_CHECKPOINT_SUBDIR) return own;
  return readSavedSpec(path.dirname(imagePath));
}

/**
 * Resolves, stages and checks the checkpoint for a Create. Refusals: CRIU missing or too old,
 * checkpoint content that is not only regular files and directories, CRIU images that are not
 * complete (format/criu/verify.ts: a missing core image, a truncated pages image), a saved spec that does
 * not match the target (pod / namespaces). On refusal the staging directory is gone.
 * When the saved spec has annotations, the bundle's config.json gets them merged in (CDI ones
 * dropped with a warning; the target's own win).
 */
export async function prepareRestore(r: RestoreRequest): Promise<RestorePlan> {
  // CRIU's check (a spawn of `criu --version` unless its version is remembered) runs while the
  // checkpoint is read and checked; nothing is written before it has passed, and when both
  // fail, CRIU's error is the one reported, as when it ran first.
  const criuCheck = ensureCriu(r.options.criuPath);
  criuCheck.catch(() => undefined); // awaited below; not unhandled while the checks run
  // Options.criu_image_path: containerd passes it as the checkpoint for runc's runtime names.
  const source = r.options.criuImagePath || r.checkpoint;
  let staged = false;
  try {
    let imagePath: string;
    if (await isArchiveFile(source)) {
      await criuCheck; // staging writes into the bundle: not for a restore CRIU refuses
      imagePath = (await stageCheckpointArchive(source, r.bundle, r.log)).dir;
      staged = true;
    } else {
      await assertOnlyRegularFilesAndDirs(source);
      imagePath = source;
    }
    // CRIU trusts its images: a truncated pages image sends its restorer into an endless loop.
    // Refuse an incomplete image set here, before anything is linked, mounted or run.
    await assertCriuImagesComplete(imagePath);
    const criu = await criuCheck;
    if (r.parentCheckpoint) {
      // runc restore has no --parent-path: CRIU follows a `parent` link in the image dir. The
      // content check above refused any link the checkpoint brought; this one is ours.
      await assertOnlyRegularFilesAndDirs(r.parentCheckpoint);
      await fsp.symlink(path.resolve(r.parentCheckpoint), path.join(imagePath, 'parent'));
    }
    const configPath = path.join(r.bundle, 'config.json');
    const target = JSON.parse(await fsp.readFile(configPath, 'utf8')) as SpecForRestore & Record<string, unknown>;
    const saved = await findSavedSpec(imagePath);
    if (saved) {
      checkRestoreCompatibility(saved, target);
      if (saved.annotations && Object.keys(saved.annotations).length > 0) {
        target.annotations = mergeRestoredAnnotations(target.annotations ?? {}, saved.annotations, r.log);
        await fsp.writeFile(configPath, JSON.stringify(target));
      }
    } else {
      await checkPidNamespaceFromImages(imagePath, target);
    }
    return { imagePath, workPath: criuWorkDir(r.bundle, r.options.criuWorkPath), staged, criu };
  } catch (err) {
    if (staged) await removeStagingDir(r.bundle);
    await criuCheck; // CRIU missing or too old: that error, not the checkpoint's
    throw err;
  }
}
