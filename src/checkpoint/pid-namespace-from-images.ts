// The pod rule for pid namespaces when a checkpoint carries no saved spec. containerd's CRI
// leaves spec.dump out of what it unpacks when the restore comes from an archive path (only a
// checkpoint image brings it along), and containerd's own checkpoints (ctr) have none. The CRIU
// images still tell: pstree.img records each task's pid inside the dumped pid namespace, and a
// container's first process is pid 1 exactly when the container had a pid namespace of its
// own. In a pod that shares one, pid 1 is the pause process, which is not in the checkpoint.
import { FailedPreconditionError } from '../errors';
import { DirImageStore } from '../format/criu/image-store';
import { readPstree } from '../format/criu/images';
import type { SpecForRestore } from './restore';

/**
 * Refuses a restore whose checkpoint had its own pid namespace (first task pid 1) into a target
 * without one, or a checkpoint taken in a shared pid namespace (first task not pid 1) into a
 * target with a private one. A target in the host's pid namespace is only refused a private
 * checkpoint: a first pid other than 1 may be the host's or a shared namespace's.
 */
export async function checkPidNamespaceFromImages(imagePath: string, target: SpecForRestore): Promise<void> {
  let root: number;
  try {
    const tree = await readPstree(new DirImageStore(imagePath));
    if (tree.length === 0) return;
    root = tree[0]!.pid;
  } catch {
    return; // no readable pstree: the image check before this one speaks for the images
  }
  const ns = (target.linux?.namespaces ?? []).find((n) => n && n.type === 'pid');
  const targetMode = !ns ? 'host' : typeof ns.path === 'string' && ns.path !== '' ? 'shared' : 'private';
  if (root === 1 && targetMode !== 'private') {
    throw new FailedPreconditionError(`restore refused: the checkpoint's pid namespace is private (its first process is pid 1), the target's is ${targetMode}`);
  }
  if (root !== 1 && targetMode === 'private') {
    throw new FailedPreconditionError(`restore refused: the checkpoint's pid namespace is shared (its first process is pid ${root}, not 1), the target's is private`);
  }
}
