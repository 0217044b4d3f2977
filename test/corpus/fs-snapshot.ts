// Test helpers for the checkpoint safety tests: a full lstat listing of a tree (to prove
// nothing outside the staging dir changed) and a logger that records warnings.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

// Directory mtimes are left out: creating <bundle>/ctrd-restore legitimately changes the
// bundle's; the listing itself shows any entry added or removed anywhere.
export interface Node { type: string; mode: number; size: number; sha?: string; link?: string; mtimeMs?: number }

/** Every path under `root` (lstat, never following), except the relative paths in `exclude`. */
export function snapshotTree(root: string, exclude: string[] = []): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (exclude.includes(childRel)) continue;
      const abs = path.join(root, childRel);
      const st = fs.lstatSync(abs);
      const node: Node = { type: kind(st), mode: st.mode & 0o7777, size: st.isDirectory() ? 0 : st.size };
      if (!st.isDirectory()) node.mtimeMs = st.mtimeMs;
      if (st.isFile()) node.sha = crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
      if (st.isSymbolicLink()) node.link = fs.readlinkSync(abs);
      out.set(childRel, node);
      if (st.isDirectory()) walk(childRel);
    }
  };
  walk('');
  return out;
}

function kind(st: fs.Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  return 'other';
}

export interface RecordedLog { msg: string; meta?: object }

export function recordingLogger(): { warn(msg: string, meta?: object): void; debug(msg: string, meta?: object): void; warnings: RecordedLog[] } {
  const warnings: RecordedLog[] = [];
  return {
    warnings,
    warn: (msg, meta) => { warnings.push({ msg, meta }); },
    debug: () => undefined,
  };
}
