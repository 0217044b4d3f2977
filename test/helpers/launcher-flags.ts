// The node flags the shim's launcher starts node with: its `node_flags='…'` line, read from
// shim/containerd-shim-ferry-v2 so that a test runs under exactly what the launcher gives.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SHIM_LAUNCHER = path.resolve(__dirname, '../../shim/containerd-shim-ferry-v2');

export function launcherNodeFlags(): string[] {
  const m = /^node_flags='([^']*)'$/m.exec(fs.readFileSync(SHIM_LAUNCHER, 'utf8'));
  if (!m) throw new Error(`${SHIM_LAUNCHER}: no node_flags line`);
  return m[1]!.split(/\s+/).filter(Boolean);
}
