// containerd.services.images.v1.Images: names → target descriptors in the content store.
import { Image, ImagesDefinition } from '../../../api/gen/containerd/services/images/v1/images';
import type { Connection, Partial2 } from './connection';

export type { Image };

/** The image, or undefined when containerd has none with this name. */
export async function findImage(conn: Connection, name: string): Promise<Image | undefined> {
  try {
    return (await conn.unary(ImagesDefinition, 'get', { name })).image;
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw err;
  }
}

export async function listImages(conn: Connection, filters: string[] = []): Promise<Image[]> {
  return (await conn.unary(ImagesDefinition, 'list', { filters })).images;
}

/** Creates the image, or updates its target and labels when the name exists (as `ctr` does). */
export async function putImage(conn: Connection, image: Partial2<Image>): Promise<Image> {
  try {
    return (await conn.unary(ImagesDefinition, 'create', { image })).image!;
  } catch (err) {
    if ((err as { code?: number }).code !== 6 /* ALREADY_EXISTS */) throw err;
    return (await conn.unary(ImagesDefinition, 'update', { image, updateMask: ['target', 'labels'] })).image!;
  }
}

export async function deleteImage(conn: Connection, name: string, sync = true): Promise<void> {
  await conn.unary(ImagesDefinition, 'delete', { name, sync });
}
