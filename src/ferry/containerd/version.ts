// containerd.services.version.v1.Version: which containerd we talk to (1.7 and 2.x differ in
// what their Transfer service and CRI accept).
import { VersionDefinition } from '../../../api/gen/containerd/services/version/v1/version';
import type { Connection } from './connection';

export interface ContainerdVersion {
  version: string;
  revision: string;
  /** Major and minor as numbers (1.7.24 → [1, 7]). */
  major: number;
  minor: number;
}

export async function containerdVersion(conn: Connection): Promise<ContainerdVersion> {
  const r = await conn.unary(VersionDefinition, 'version', {}, { timeoutMs: 10000 });
  const m = /^v?(\d+)\.(\d+)/.exec(r.version);
  return { version: r.version, revision: r.revision, major: m ? Number(m[1]) : 0, minor: m ? Number(m[2]) : 0 };
}
