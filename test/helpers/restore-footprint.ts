// What a `ferry restore` may leave in a test containerd and on the file system, as one
// comparable record: containerd's store (containerd-state.ts: containers, tasks, snapshots,
// leases, content, images) plus its active ingests, the mounts under containerd's and ferry's
// directories, and every path under ferry's state directory. A refused restore must leave the
// record exactly as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Containerd } from './containerd';
import { storeState, type StoreState } from './containerd-state';
import { mountsUnder } from './procfs';

export interface Footprint extends StoreState {
  ingests: string[];
  mounts: string[];
  stateFiles: string[];
}

function walk(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p));
      if (e.isDirectory()) visit(p);
    }
  };
  visit(dir);
  return out.sort();
}

export async function footprint(c: Containerd, stateDir: string): Promise<Footprint> {
  const active = await c.ctr(['content', 'active']);
  if (active.code !== 0) throw new Error(`ctr content active failed: ${active.stderr}`);
  return {
    ...(await storeState(c)),
    ingests: active.stdout.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean).sort(),
    mounts: [...mountsUnder(c.dir), ...mountsUnder(stateDir)].map((m) => m.mountPoint).sort(),
    // ferry keeps empty parents (staging/, fifo/, containers/<daemon>/<ns>/) between runs: only what is in them counts.
    stateFiles: walk(stateDir).filter((p) => !['staging', 'fifo', 'containers'].includes(p) && !/^containers\/[^/]+(\/[^/]+)?$/.test(p)),
  };
}
