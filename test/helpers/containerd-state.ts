// What a test containerd holds in its namespace — content blobs, snapshots, leases, images,
// containers, tasks — listed through ctr, so that a test can show an operation left nothing
// behind (compare before and after) or made exactly what it should.
import type { Containerd } from './containerd';

export interface StoreState {
  content: string[];
  snapshots: string[];
  leases: string[];
  images: string[];
  containers: string[];
  tasks: string[];
}

async function column(c: Containerd, args: string[], skipHeader = true): Promise<string[]> {
  const r = await c.ctr(args);
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.split('\n').slice(skipHeader ? 1 : 0).map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean).sort();
}

export async function storeState(c: Containerd): Promise<StoreState> {
  return {
    content: await column(c, ['content', 'ls', '-q'], false),
    snapshots: await column(c, ['snapshots', 'ls']),
    leases: await column(c, ['leases', 'ls', '-q'], false),
    images: await column(c, ['images', 'ls', '-q'], false),
    containers: await column(c, ['containers', 'ls', '-q'], false),
    tasks: await column(c, ['tasks', 'ls']),
  };
}
