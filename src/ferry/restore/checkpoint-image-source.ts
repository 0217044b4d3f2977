// A checkpoint OCI image as a restore source: the archive's files at `/` of a FROM-scratch image
// with one layer (ferry's --create-image, Podman's --create-image, the buildah recipe of the
// Kubernetes docs). Recognised by any engine's checkpoint annotation, on the image target
// (manifest or index) or on the platform manifest. The image is found locally or pulled.
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { ImageAnnotation } from '../../format/layout';
import { findImage, readContent, readContentBytes, type Connection, type Image } from '../containerd';
import { normaliseImageName, type PullImage, resolveImage } from './base-image';

const CHECKPOINT_KEYS: string[] = [ImageAnnotation.containerdName, ImageAnnotation.crioName, ImageAnnotation.podmanName, ImageAnnotation.podmanRuntimeName];

export interface CheckpointImageLayer {
  image: string;
  pulled: boolean;
  layer: { mediaType: string; digest: string; size: number };
}

async function annotationsOf(conn: Connection, digest: string): Promise<Record<string, unknown>> {
  const doc = JSON.parse((await readContentBytes(conn, digest, 4 * 1024 * 1024)).toString('utf8')) as { annotations?: Record<string, unknown> };
  return doc && typeof doc.annotations === 'object' && doc.annotations !== null ? doc.annotations : {};
}

/** Finds (or pulls) `ref`, checks it is a checkpoint image, and returns its one layer. */
export async function checkpointImageLayer(conn: Connection, ref: string, pull: PullImage | undefined): Promise<CheckpointImageLayer> {
  let image: Image | undefined = (await findImage(conn, ref)) ?? (await findImage(conn, normaliseImageName(ref)));
  let pulled = false;
  if (!image) {
    if (!pull) throw new NotFoundError(`checkpoint image ${ref} is not in containerd's image store`);
    image = await pull(conn, ref);
    pulled = true;
  }
  const resolved = await resolveImage(conn, image);
  const annotations = { ...(await annotationsOf(conn, resolved.targetDigest)), ...(resolved.manifestDigest !== resolved.targetDigest ? await annotationsOf(conn, resolved.manifestDigest) : {}) };
  if (!CHECKPOINT_KEYS.some((k) => typeof annotations[k] === 'string')) {
    throw new InvalidArgumentError(`image ${image.name} is not a checkpoint image (none of the annotations ${CHECKPOINT_KEYS.join(', ')})`);
  }
  if (resolved.layers.length !== 1) {
    throw new InvalidArgumentError(`checkpoint image ${image.name} has ${resolved.layers.length} layers; a checkpoint image has one`);
  }
  return { image: image.name, pulled, layer: resolved.layers[0]! };
}

/** The layer's bytes, streamed from containerd's content store. */
export function readLayer(conn: Connection, layer: { digest: string }): AsyncIterable<Buffer> {
  return readContent(conn, layer.digest) as AsyncIterable<Buffer>;
}
