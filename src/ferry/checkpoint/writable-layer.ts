// The container's writable layer as rootfs-diff.tar + deleted.files (what Podman and CRI-O put in
// an archive): containerd's Diff service compares a read-only view of the image (the snapshot's
// parent, the image's chain id) with the container's active snapshot — as containerd's own
// client does for `ctr c checkpoint --rw` (pkg/rootfs CreateDiff) — and writes an uncompressed OCI
// layer into the content store; that layer is streamed back and converted (whiteouts become
// deleted.files). ferry mounts nothing itself.
//
// Everything made here (the view, the layer blob) is made under the caller's lease: the view is
// removed at once, the blob goes with the lease. Content is never deleted by digest, because an
// identical blob (an empty layer, say) may belong to someone else's image.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Connection } from '../containerd/connection';
import type { Container } from '../containerd/containers';
import { readContent } from '../containerd/content';
import { diffLayer } from '../containerd/diff';
import { removeSnapshot, snapshotMounts, statSnapshot, viewSnapshot } from '../containerd/snapshots';
import { OciMediaType } from '../../format/layout';
import { rootfsDiffEntries, RootfsDiffSummary } from '../../format/rootfs-diff';
import { writeTar } from '../../format/tar-writer';

export interface WritableLayer extends RootfsDiffSummary {
  /** Bytes of the layer containerd produced (uncompressed). */
  layerBytes: number;
}

/**
 * Writes rootfs-diff.tar to `outFile` (mode 0600); undefined when the container has no snapshot
 * (a container made on a bare rootfs has no layer to diff).
 */
export async function exportWritableLayer(leased: Connection, container: Container, outFile: string): Promise<WritableLayer | undefined> {
  if (!container.snapshotKey || !container.snapshotter) return undefined;
  const info = await statSnapshot(leased, container.snapshotter, container.snapshotKey);
  if (!info) return undefined;
  const unique = randomBytes(6).toString('hex');
  const lowerKey = `ferry-checkpoint-parent-view-${container.id}-${unique}`;
  const lower = info.parent ? await viewSnapshot(leased, container.snapshotter, lowerKey, info.parent) : [];
  let layer;
  try {
    const upper = await snapshotMounts(leased, container.snapshotter, container.snapshotKey);
    layer = await diffLayer(leased, lower, upper, OciMediaType.layer, `ferry-checkpoint-rw-${container.id}-${unique}`);
  } finally {
    if (info.parent) await removeSnapshot(leased, container.snapshotter, lowerKey).catch(() => undefined);
  }
  const summary: RootfsDiffSummary = { deletedFiles: [], entries: 0 };
  const tar = Readable.from(writeTar(rootfsDiffEntries(readContent(leased, layer.digest), summary)), { objectMode: false });
  // Opened before the pipeline starts, not by a write stream: a stream's open is still in flight
  // when an early error ends the pipeline, and would create the file after the caller's cleanup
  // had removed its directory's contents.
  const fh = await open(outFile, 'wx', 0o600);
  try {
    await pipeline(tar, fh.createWriteStream());
  } finally {
    await fh.close().catch(() => undefined);
  }
  return { ...summary, layerBytes: layer.size };
}
