// Checkpoint OCI images made by a real producer: buildah (bookworm's 1.28), the recipe of the
// Kubernetes blog, containerd's and CRI-O's test scripts (checkpoint-formats.md §2.1):
//   buildah from scratch; buildah add $c ARCHIVE /; buildah config --annotation KEY=NAME $c; buildah commit
// then pushed to an OCI archive that `ctr images import` loads. buildah's store is machine-wide
// (shared with podman and other engineers): the working container and the image get unique
// names and both are removed here, whatever happens.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function buildah(args: string[]): Promise<string> {
  try {
    return (await run('buildah', args, { timeout: 180000, maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`buildah ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

export interface BuildahImageOptions {
  /** The checkpoint archive (tar, tar.gz or tar.zst: buildah add unpacks all of them at /). */
  archive: string;
  /** Unique image name, e.g. localhost/ferry-inspect-<pid>-1:latest. */
  name: string;
  /** Annotations for `buildah config --annotation` (on the manifest). */
  annotations: Record<string, string>;
  /** Where to write the OCI archive. */
  ociArchive: string;
}

/** Builds the image and writes it as an OCI archive whose index names it `name`. */
export async function buildahCheckpointImage(o: BuildahImageOptions): Promise<void> {
  const working = `${o.name.replace(/[^a-zA-Z0-9_.-]/g, '-')}-working`;
  await buildah(['from', '--name', working, 'scratch']);
  try {
    await buildah(['add', working, o.archive, '/']);
    await buildah(['config', ...Object.entries(o.annotations).flatMap(([k, v]) => ['--annotation', `${k}=${v}`]), working]);
    await buildah(['commit', '-q', working, o.name]);
    await buildah(['push', '-q', o.name, `oci-archive:${o.ociArchive}:${o.name}`]);
  } finally {
    await buildah(['rm', working]).catch(() => undefined);
    await buildah(['rmi', o.name]).catch(() => undefined);
  }
}
