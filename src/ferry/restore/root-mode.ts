// The mode of the container's root directory as CRIU recorded it. CRIU checks the root and cwd
// of every process against its images ("File . has bad mode 040755 (expect 040555)"), and
// engines disagree about a layer root's mode: containers/storage (Podman, CRI-O) makes it 0555,
// containerd's snapshotters 0755. A layer cannot set it (containerd's applier ignores entries
// for the root), so restore sets the snapshot's own top directory to the recorded mode.
import * as fs from 'node:fs';
import { NotFoundError } from '../../errors';
import { DirImageStore } from '../../format/criu/image-store';
import { readFiles, readFs, readPstree } from '../../format/criu/images';
import type { Mount } from '../containerd';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** The recorded mode bits (07777) of the first process's root directory, if the images say. */
export async function recordedRootMode(imagesDir: string): Promise<number | undefined> {
  const store = new DirImageStore(imagesDir);
  try {
    const [init] = await readPstree(store);
    if (!init) return undefined;
    const fsEntry = await readFs(store, init.pid);
    const root = (await readFiles(store)).find((f) => f.id === fsEntry.rootId)?.reg;
    if (!root || root.mode === undefined || (root.mode & S_IFMT) !== S_IFDIR) return undefined;
    return root.mode & 0o7777;
  } catch (err) {
    // verify ran before: a missing optional image only means there is nothing to match.
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** The directory that is the top of a snapshot's mounts: overlay's upperdir, or a bind mount's source. */
export function writableRoot(mounts: Mount[]): string | undefined {
  if (mounts.length !== 1) return undefined;
  const m = mounts[0]!;
  if (m.type === 'overlay') return m.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
  if (m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind')) return m.source;
  return undefined;
}

/** Gives the snapshot's root the recorded mode; false when the snapshotter's mounts do not allow it. */
export async function matchRootMode(mounts: Mount[], mode: number): Promise<boolean> {
  const dir = writableRoot(mounts);
  if (!dir) return false;
  const st = await fs.promises.lstat(dir);
  if (!st.isDirectory()) return false;
  if ((st.mode & 0o7777) !== mode) await fs.promises.chmod(dir, mode);
  return true;
}
