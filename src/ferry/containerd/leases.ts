// containerd.services.leases.v1.Leases: what is made under a lease (content, snapshots) survives
// containerd's garbage collection until the lease ends — needed between writing a blob and
// referencing it from an image, or preparing a snapshot and creating a container on it.
import { LeasesDefinition } from '../../../api/gen/containerd/services/leases/v1/leases';
import type { Connection } from './connection';

export async function createLease(conn: Connection, labels: Record<string, string> = {}, expireAfterSeconds = 24 * 3600): Promise<string> {
  // containerd's own client expires leases through this label (leases.WithExpiration).
  const expire = new Date(Date.now() + expireAfterSeconds * 1000).toISOString();
  const id = `ferry-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const r = await conn.unary(LeasesDefinition, 'create', { id, labels: { 'containerd.io/gc.expire': expire, ...labels } });
  return r.lease!.id;
}

export async function deleteLease(conn: Connection, id: string, sync = false): Promise<void> {
  await conn.unary(LeasesDefinition, 'delete', { id, sync });
}

/** Runs `fn` with a connection whose calls are made under a fresh lease, then ends the lease. */
export async function withLease<T>(conn: Connection, fn: (leased: Connection) => Promise<T>): Promise<T> {
  const id = await createLease(conn);
  try {
    return await fn(conn.withLease(id));
  } finally {
    await deleteLease(conn, id).catch(() => undefined);
  }
}
