// containerd.services.snapshots.v1.Snapshots: the layered filesystems containers run on. A
// container's writable layer is an active snapshot (key = the container's snapshot_key) whose
// parent is the image's chain id.
import { SnapshotsDefinition } from '../../../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount } from '../../../api/gen/containerd/types/mount';
import type { Connection } from './connection';

export type { Mount };

export const DEFAULT_SNAPSHOTTER = 'overlayfs';

export async function prepareSnapshot(conn: Connection, snapshotter: string, key: string, parent: string, labels: Record<string, string> = {}): Promise<Mount[]> {
  return (await conn.unary(SnapshotsDefinition, 'prepare', { snapshotter, key, parent, labels })).mounts;
}

export async function viewSnapshot(conn: Connection, snapshotter: string, key: string, parent: string, labels: Record<string, string> = {}): Promise<Mount[]> {
  return (await conn.unary(SnapshotsDefinition, 'view', { snapshotter, key, parent, labels })).mounts;
}

export async function snapshotMounts(conn: Connection, snapshotter: string, key: string): Promise<Mount[]> {
  return (await conn.unary(SnapshotsDefinition, 'mounts', { snapshotter, key })).mounts;
}

export async function commitSnapshot(conn: Connection, snapshotter: string, name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
  await conn.unary(SnapshotsDefinition, 'commit', { snapshotter, name, key, labels });
}

export async function removeSnapshot(conn: Connection, snapshotter: string, key: string): Promise<void> {
  await conn.unary(SnapshotsDefinition, 'remove', { snapshotter, key });
}

/** The snapshot's info, or undefined when there is none with this key. */
export async function statSnapshot(conn: Connection, snapshotter: string, key: string) {
  try {
    return (await conn.unary(SnapshotsDefinition, 'stat', { snapshotter, key })).info;
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw err;
  }
}
