// containerd.services.diff.v1.Diff: containerd mounts and diffs/applies layers itself, so the
// CLI never needs mount privileges of its own for a container's filesystem.
import { DiffDefinition } from '../../../api/gen/containerd/services/diff/v1/diff';
import type { Descriptor } from '../../../api/gen/containerd/types/descriptor';
import type { Mount } from '../../../api/gen/containerd/types/mount';
import type { Connection } from './connection';

/** Applies a layer blob (already in the content store) onto the mounts; returns the applied (uncompressed) descriptor. */
export async function applyLayer(conn: Connection, layer: Descriptor, mounts: Mount[]): Promise<Descriptor> {
  const r = await conn.unary(DiffDefinition, 'apply', { diff: layer, mounts });
  return r.applied!;
}

/**
 * Writes the changes from `lower` to `upper` into the content store as a layer of `mediaType`
 * (e.g. application/vnd.oci.image.layer.v1.tar or …tar+gzip; deletions are `.wh.` whiteouts).
 */
export async function diffLayer(conn: Connection, lower: Mount[], upper: Mount[], mediaType: string, ref: string, labels: Record<string, string> = {}): Promise<Descriptor> {
  const r = await conn.unary(DiffDefinition, 'diff', { left: lower, right: upper, mediaType, ref, labels });
  return r.diff!;
}
