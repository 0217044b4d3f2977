// Where containerd's CRI plugin collects CRIU's dump.log and stats-dump for a
// CheckpointContainer archive, when it gives the shim no work path.
//
// containerd's CRI passes CheckpointOptions{work_path} only to runtimes named
// io.containerd.runc.v2 (internal/cri/server/container_checkpoint_linux.go,
// withCheckpointOpts); for ferry's runtime type it passes no options, so CRIU's logs would stay
// in ferry's own work dir and the archive would lack dump.log and stats-dump (checkpointctl
// `inspect --stats` then fails). The CRI code archives a directory of its container root dir
// `<cri root>/containers/<id>`:
//  - containerd 2.1.9, 2.2.5+, 2.3.2+: `<container root>/ctrd-checkpoint`, created fresh
//    (0700) before the task is checkpointed, archived and removed afterwards;
//  - 2.0 to 2.1.8, 2.2.0–2.2.4, 2.3.0–2.3.1: it copies `stats-dump` (mandatory: the
//    checkpoint fails without it) and `dump.log` out of `<container root>` itself.
// The shim finds `<cri root>` from the container's spec: CRI bind-mounts the pod's
// /etc/hostname (and /etc/resolv.conf, /etc/hosts unless kubelet brings its own) from
// `<cri root>/sandboxes/<sandbox id>/`, and names the sandbox in the
// `io.kubernetes.cri.sandbox-id` annotation. Every directory on the way must be a real
// directory owned by us (lstat, never following a link), and the container root must hold
// CRI's `status` file; otherwise the spec is not a CRI container's and nothing is written.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CriAnnotation } from '../format/layout';

/** CRI's annotation value for an application container (the sandbox's is "sandbox"). */
const CRI_CONTAINER_TYPE = 'container';
/** Files CRI bind-mounts from `<cri root>/sandboxes/<sandbox id>/` into every container. */
const SANDBOX_FILES = ['hostname', 'resolv.conf', 'hosts'];
/** CRI's per-container state file in `<cri root>/containers/<id>/`. */
const CRI_STATUS_FILE = 'status';
/** The directory containerd 2.1.9+ archives (`ctrd-checkpoint` of the container root). */
export const CRI_CHECKPOINT_DIR = 'ctrd-checkpoint';

interface SpecForCollect {
  annotations?: Record<string, unknown>;
  mounts?: { destination?: unknown; source?: unknown }[];
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

async function isOwnedDir(p: string): Promise<boolean> {
  try {
    const st = await fsp.lstat(p);
    return st.isDirectory() && st.uid === process.getuid!();
  } catch {
    return false;
  }
}

async function isRegularFile(p: string): Promise<boolean> {
  try {
    return (await fsp.lstat(p)).isFile();
  } catch {
    return false;
  }
}

/** `<cri root>` from the spec's sandbox bind mounts, if the spec is a CRI container's. */
export function criRootFromSpec(spec: SpecForCollect): string | undefined {
  const a = spec.annotations ?? {};
  if (a[CriAnnotation.containerType] !== CRI_CONTAINER_TYPE) return undefined;
  const sandboxId = a[CriAnnotation.sandboxId];
  if (typeof sandboxId !== 'string' || !SAFE_NAME.test(sandboxId)) return undefined;
  for (const m of spec.mounts ?? []) {
    if (typeof m?.source !== 'string' || !path.isAbsolute(m.source)) continue;
    const source = path.normalize(m.source);
    if (source !== m.source) continue; // no `..`, no doubled slashes: only what CRI itself writes
    const file = path.basename(source);
    const sandboxDir = path.dirname(source);
    if (!SANDBOX_FILES.includes(file) || path.basename(sandboxDir) !== sandboxId) continue;
    const sandboxes = path.dirname(sandboxDir);
    if (path.basename(sandboxes) !== 'sandboxes') continue;
    return path.dirname(sandboxes);
  }
  return undefined;
}

/**
 * The directory to copy dump.log and stats-dump into for container `id` (see the header), or
 * undefined when the container is not one of containerd's CRI or the layout is not CRI's.
 */
export async function criCheckpointCollectDir(spec: SpecForCollect, id: string): Promise<string | undefined> {
  if (!SAFE_NAME.test(id)) return undefined;
  const criRoot = criRootFromSpec(spec);
  if (!criRoot) return undefined;
  const containers = path.join(criRoot, 'containers');
  const containerRoot = path.join(containers, id);
  for (const d of [criRoot, containers, containerRoot]) {
    if (!(await isOwnedDir(d))) return undefined;
  }
  if (!(await isRegularFile(path.join(containerRoot, CRI_STATUS_FILE)))) return undefined;
  const hardened = path.join(containerRoot, CRI_CHECKPOINT_DIR);
  try {
    await fsp.lstat(hardened);
  } catch {
    return containerRoot; // containerd before the ctrd-checkpoint work dir
  }
  return (await isOwnedDir(hardened)) ? hardened : undefined;
}
