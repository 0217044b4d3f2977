// Putting crafted checkpoint content into a test containerd and checking what a refused (or
// failed) restore leaves behind. Shared by the restore e2e suites (restore-refusals,
// checkpoint-corpus): ctr cannot hand a crafted checkpoint or task options to a runtime not
// named io.containerd.runc.*, so these suites ingest content themselves and call Tasks.Create
// with containerd's API (test/helpers/containerd-api.ts).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Containerd } from './containerd';
import { expectExit, taskRow } from './lanes';
import { findShimDaemons, listProcs, mountsUnder, waitFor } from './procfs';
import type { Mount } from '../../api/gen/containerd/types/mount';

/** The media type of a checkpoint image's CRIU tar (the only one containerd's Tasks.Create unpacks). */
export const CRIU_TAR = 'application/vnd.containerd.container.criu.checkpoint.criu.tar';

export interface Desc { mediaType: string; digest: string; size: number }

/** Runs ctr and requires exit 0 (failing with ctr's output and containerd's log tail); returns stdout. */
export async function ctrOk(c: Containerd, args: string[], input?: Buffer): Promise<string> {
  const r = await c.ctr(args, { input, timeoutMs: 90000 });
  expectExit(c, r, 0);
  return r.stdout;
}

/** A blob of the content store, whole (`ctr content get`). */
export async function contentBytes(c: Containerd, digest: string): Promise<Buffer> {
  const child = c.spawnCtr(['content', 'get', digest]);
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => chunks.push(b));
  await new Promise((r) => child.once('close', r));
  return Buffer.concat(chunks);
}

/** Unpacks a tar, lets `edit` change the tree, packs it again (GNU tar keeps symlinks/FIFOs as such). */
export function editTar(tar: Buffer, edit: (dir: string) => void): Buffer {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-craft-'));
  try {
    const dir = path.join(tmp, 'd');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(tmp, 'in.tar'), tar);
    execFileSync('tar', ['-xf', path.join(tmp, 'in.tar'), '-C', dir]);
    edit(dir);
    return execFileSync('tar', ['-cf', '-', '-C', dir, '.'], { maxBuffer: 512 * 1024 * 1024 });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Puts bytes into the content store as a CRIU checkpoint tar; returns their descriptor. */
export async function ingestCheckpoint(c: Containerd, data: Buffer): Promise<Desc> {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  // Unreferenced content is garbage-collected at the next GC (which a previous test's removals
  // may have scheduled) and ctr ingest takes no lease: label it a GC root, retrying if the GC
  // won the race.
  for (let attempt = 0; ; attempt++) {
    await ctrOk(c, ['content', 'ingest', '--expected-size', String(data.length), '--expected-digest', digest, `crafted-${digest.slice(7, 19)}`], data);
    const r = await c.ctr(['content', 'label', digest, 'containerd.io/gc.root=ferry-test']);
    if (r.code === 0) break;
    if (attempt >= 5) expectExit(c, r, 0);
  }
  return { mediaType: CRIU_TAR, digest, size: data.length };
}

/** The descriptor of the CRIU tar in a checkpoint image (`ctr c checkpoint --image`). */
export async function criuTarOf(c: Containerd, ref: string): Promise<Desc> {
  const ls = await ctrOk(c, ['images', 'ls']);
  const line = ls.split('\n').find((l) => l.startsWith(ref + ' '));
  if (!line) throw new Error(`image ${ref} not listed:\n${ls}`);
  const index = JSON.parse(await ctrOk(c, ['content', 'get', line.split(/\s+/)[2]!])) as { manifests: Desc[] };
  const d = index.manifests.find((m) => m.mediaType === CRIU_TAR);
  if (!d) throw new Error(`no CRIU tar in ${ref}`);
  return d;
}

/** The rootfs mounts of a container's snapshot, from `ctr snapshots mounts`. */
export async function rootfsMounts(c: Containerd, key: string): Promise<Mount[]> {
  const out = (await ctrOk(c, ['snapshots', 'mounts', '/unused', key])).trim();
  const m = /^mount -t (\S+) (\S+) \S+(?: -o (\S+))?$/.exec(out);
  if (!m) throw new Error(`unexpected snapshot mounts: ${out}`);
  return [{ type: m[1]!, source: m[2]!, target: '', options: m[3] ? m[3].split(',') : [] }];
}

/** Every directory named ctrd-restore (ferry's staging dir) under `dir`, not descending into rootfs. */
export function findCtrdRestore(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string, depth: number) => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (e.name === 'ctrd-restore') found.push(p);
      else if (e.isDirectory() && depth < 6 && e.name !== 'rootfs') walk(p, depth + 1);
    }
  };
  walk(dir, 0);
  return found;
}

/**
 * What a refused or failed restore of container `id` left behind, as readable problems (empty =
 * nothing): a task, its shim daemon (waited for up to timeoutMs: containerd calls Delete and
 * Shutdown after a failed Create), mounts under the state dir, a ctrd-restore staging dir
 * anywhere in containerd's root or state, a process whose root is inside the state dir (a
 * half-restored container), runc state for the container.
 */
export async function restoreLeftovers(c: Containerd, id: string, timeoutMs = 10000): Promise<string[]> {
  const problems: string[] = [];
  const task = await taskRow(c, id);
  if (task) problems.push(`task ${id} still listed: ${JSON.stringify(task)}`);
  const shimGone = await waitFor(() => findShimDaemons(c.address, id).length === 0 || undefined, timeoutMs, 100);
  if (!shimGone) problems.push(`shim daemon left: ${JSON.stringify(findShimDaemons(c.address, id))}`);
  for (const m of mountsUnder(c.state)) problems.push(`mount left: ${m.mountPoint} (${m.fsType})`);
  for (const d of [...findCtrdRestore(c.state), ...findCtrdRestore(c.root)]) problems.push(`staging dir left: ${d}`);
  for (const p of listProcs()) {
    let root = '';
    try { root = fs.readlinkSync(`/proc/${p.pid}/root`); } catch { continue; }
    if (root.startsWith(c.state)) problems.push(`process ${p.pid} (${p.argv.join(' ')}) runs with its root in ${root}`);
  }
  const runcState = `/run/containerd/runc/${c.namespace}/${id}`;
  if (fs.existsSync(runcState)) problems.push(`runc state left: ${runcState}`);
  return problems;
}
