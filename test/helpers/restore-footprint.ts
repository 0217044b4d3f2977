// What a `ferry restore` may leave in a test containerd and on the file system, as one
// comparable record: containerd's containers, tasks, snapshots, leases, content, active
// ingests and images (read through its API with ctr), the mounts under containerd's and
// ferry's directories, and every path under ferry's state directory. A refused restore must
// leave the record exactly as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Containerd } from './containerd';
import { expectExit } from './lanes';
import { mountsUnder } from './procfs';

export interface Footprint {
  containers: string[];
  tasks: string[];
  snapshots: string[];
  leases: string[];
  content: string[];
  ingests: string[];
  images: string[];
  mounts: string[];
  stateFiles: string[];
}

async function lines(c: Containerd, args: string[], column = 0, skipHeader = false): Promise<string[]> {
  const r = await c.ctr(args);
  expectExit(c, r, 0);
  return r.stdout.split('\n').slice(skipHeader ? 1 : 0).map((l) => l.trim().split(/\s+/)[column] ?? '').filter(Boolean).sort();
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
  return {
    containers: await lines(c, ['containers', 'ls', '-q']),
    tasks: await lines(c, ['tasks', 'ls', '-q']),
    snapshots: await lines(c, ['snapshots', 'ls'], 0, true),
    leases: await lines(c, ['leases', 'ls', '-q']),
    content: await lines(c, ['content', 'ls', '-q']),
    ingests: await lines(c, ['content', 'active'], 0, true),
    images: await lines(c, ['images', 'ls', '-q']),
    mounts: [...mountsUnder(c.dir), ...mountsUnder(stateDir)].map((m) => m.mountPoint).sort(),
    // ferry keeps empty parents (staging/, fifo/, containers/<daemon>/<ns>/) between runs: only what is in them counts.
    stateFiles: walk(stateDir).filter((p) => !['staging', 'fifo', 'containers'].includes(p) && !/^containers\/[^/]+(\/[^/]+)?$/.test(p)),
  };
}
