// Where a shim daemon listens: a filesystem unix socket (never abstract: abstract sockets were
// reachable from host-network containers, CVE-2020-15257) under a root-only directory, named
// from containerd's address, the namespace and the group id, like the Go shim's.
import { createHash } from 'node:crypto';
import * as path from 'node:path';

/** The Go shim's socket directory (`/run/containerd/s`). */
export const SOCKET_DIR = process.env.FERRY_SOCKET_DIR || '/run/containerd/s';

export function socketPathFor(containerdAddress: string, namespace: string, groupId: string): string {
  const digest = createHash('sha256').update(path.join(containerdAddress, namespace, groupId)).digest('hex');
  return path.join(SOCKET_DIR, digest);
}

/** Annotations that put containers in one shim daemon, in order of precedence (as runc-v2). */
export const GROUP_ANNOTATIONS = ['io.containerd.runc.v2.group', 'io.kubernetes.cri.sandbox-id'];

export function groupIdFor(id: string, namespace: string, annotations: Record<string, string> | undefined): string {
  for (const key of GROUP_ANNOTATIONS) {
    const v = annotations?.[key];
    if (v) return v;
  }
  // ferry option: one daemon for every container of the namespace.
  if (process.env.FERRY_GROUP_BY_NAMESPACE === '1') return `ferry-namespace-${namespace}`;
  return id;
}
