// A Kubernetes-layout checkpoint archive assembled from a checkpoint made through containerd
// (`ctr c checkpoint --task`): checkpoint/ holds the CRIU images of the image's CRIU tar,
// config.dump and spec.dump are written here as containerd's CRI writes them (the CRI container
// name annotation, which checkpointctl takes the name from). This is ASSEMBLED by the tests, not
// written by a producer: `ferry checkpoint --export` (issue 7) does not exist yet; once it lands
// the inspect tests switch to it. The tar itself is made by GNU tar.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Containerd } from './containerd';
import { CRIU_TAR, ctrOk, type Desc } from './checkpoint-content';

export const CRI_CONTAINER_NAME = 'io.kubernetes.cri.container-name';

/** The bytes of a content blob. */
export async function contentBlob(c: Containerd, digest: string): Promise<Buffer> {
  const child = c.spawnCtr(['content', 'get', digest]);
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => chunks.push(b));
  await new Promise((r) => child.once('close', r));
  return Buffer.concat(chunks);
}

/** The CRIU tar of checkpoint image `ref`. */
export async function criuTarOfImage(c: Containerd, ref: string): Promise<Buffer> {
  const ls = await ctrOk(c, ['images', 'ls']);
  const line = ls.split('\n').find((l) => l.startsWith(`${ref} `));
  if (!line) throw new Error(`image ${ref} not listed:\n${ls}`);
  const index = JSON.parse((await contentBlob(c, line.split(/\s+/)[2]!)).toString()) as { manifests: Desc[] };
  const d = index.manifests.find((m) => m.mediaType === CRIU_TAR);
  if (!d) throw new Error(`no CRIU tar in ${ref}`);
  return contentBlob(c, d.digest);
}

export interface AssembledArchive {
  file: string;
  name: string;
  config: Record<string, unknown>;
  /** Whether the checkpoint had CRIU's stats-dump (then at the archive's top). */
  stats: boolean;
}

/**
 * Writes `<dir>/checkpoint-<name>.tar` (optionally gzip/zstd) from container `id`'s checkpoint
 * image `ref`, its spec (ctr c info) and the facts given.
 */
export async function assembleArchive(c: Containerd, opts: { id: string; ref: string; name: string; runtime: string; dir: string; compress?: 'gzip' | 'zstd'; createdTime: string; checkpointedTime: string }): Promise<AssembledArchive> {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-assemble-'));
  try {
    const ck = path.join(stage, 'checkpoint');
    fs.mkdirSync(ck);
    fs.writeFileSync(path.join(stage, 'criu.tar'), await criuTarOfImage(c, opts.ref));
    execFileSync('tar', ['-xf', path.join(stage, 'criu.tar'), '-C', ck]);
    fs.rmSync(path.join(stage, 'criu.tar'));
    // CRIU writes stats-dump into its work dir; where that is the image dir, containerd's CRI
    // copies it to the archive's top, where checkpointctl reads it.
    const stats = fs.existsSync(path.join(ck, 'stats-dump'));
    if (stats) fs.copyFileSync(path.join(ck, 'stats-dump'), path.join(stage, 'stats-dump'));
    const info = JSON.parse(await ctrOk(c, ['containers', 'info', opts.id])) as { Spec: { annotations?: Record<string, string> }; Image: string };
    const spec = { ...info.Spec, annotations: { ...(info.Spec.annotations ?? {}), [CRI_CONTAINER_NAME]: opts.name } };
    const config = { id: opts.id, name: opts.name, rootfsImage: info.Image, rootfsImageName: info.Image, runtime: opts.runtime, createdTime: opts.createdTime, checkpointedTime: opts.checkpointedTime };
    fs.writeFileSync(path.join(stage, 'spec.dump'), JSON.stringify(spec));
    fs.writeFileSync(path.join(stage, 'config.dump'), JSON.stringify(config));
    const ext = opts.compress === 'gzip' ? '.tar.gz' : opts.compress === 'zstd' ? '.tar.zst' : '.tar';
    const file = path.join(opts.dir, `checkpoint-${opts.name}${ext}`);
    const flag = opts.compress === 'gzip' ? ['-z'] : opts.compress === 'zstd' ? ['--zstd'] : [];
    execFileSync('tar', ['-c', ...flag, '-f', file, '-C', stage, 'checkpoint', 'config.dump', 'spec.dump', ...(stats ? ['stats-dump'] : [])]);
    return { file, name: opts.name, config, stats };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
