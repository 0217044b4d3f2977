// Where a shim daemon listens: a filesystem unix socket (never abstract: abstract sockets were
// reachable from host-network containers, CVE-2020-15257) under a root-only directory, named
// from containerd's address, the namespace and the group id, like the Go shim's.
// The digest is @noble/hashes' (plain JavaScript): node:crypto costs `start` 8-15 ms of CPU on
// every container (loading the crypto modules and initialising OpenSSL) for this one hash.
import * as path from 'node:path';
import { sha256 } from '@noble/hashes/sha2';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils';

/** The Go shim's socket directory (`/run/containerd/s`). */
export const SOCKET_DIR = process.env.FERRY_SOCKET_DIR || '/run/containerd/s';

export function socketPathFor(containerdAddress: string, namespace: string, groupId: string): string {
  const digest = bytesToHex(sha256(utf8ToBytes(path.join(containerdAddress, namespace, groupId))));
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
