// The committed snapshot of an image's layers (the parent of a container's writable layer) in a
// snapshotter, named by the image's chain id as containerd's unpacker names it. An image that
// is in the store but not unpacked for this snapshotter is unpacked here through containerd's
// own Diff service (prepare, apply, commit per layer), so ferry never mounts anything itself.
import { createHash } from 'node:crypto';
import { applyLayer, commitSnapshot, prepareSnapshot, removeSnapshot, statSnapshot, type Connection } from '../containerd';
import type { ResolvedImage } from './base-image';

/** OCI chain ids: chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i]). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

/** containerd's label telling its GC which uncompressed layer a snapshot holds. */
const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';

/** The chain id of the image's top layer, unpacking the missing layers first. '' for an image without layers. */
export async function ensureUnpacked(conn: Connection, snapshotter: string, image: ResolvedImage): Promise<string> {
  const chain = chainIds(image.diffIds);
  if (chain.length === 0) return '';
  // Find the highest layer already there; unpack from the next one up.
  let have = chain.length;
  while (have > 0 && !(await statSnapshot(conn, snapshotter, chain[have - 1]!))) have--;
  for (let i = have; i < chain.length; i++) {
    const key = `ferry-unpack-${chain[i]}-${process.pid}-${Date.now().toString(36)}`;
    const mounts = await prepareSnapshot(conn, snapshotter, key, i === 0 ? '' : chain[i - 1]!);
    try {
      const layer = image.layers[i]!;
      await applyLayer(conn, { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: {} }, mounts);
      await commitSnapshot(conn, snapshotter, chain[i]!, key, { [UNCOMPRESSED_LABEL]: image.diffIds[i]! });
    } catch (err) {
      await removeSnapshot(conn, snapshotter, key).catch(() => undefined);
      if ((err as { code?: number }).code === 6 /* ALREADY_EXISTS: unpacked meanwhile */) continue;
      throw err;
    }
  }
  return chain[chain.length - 1]!;
}
