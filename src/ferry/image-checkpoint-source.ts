// A checkpoint image in containerd's image store as a checkpoint source for `ferry inspect`:
// the image's target from the Images service, its blobs from the Content service — indexes,
// manifests and the spec read whole but bounded, layers and CRIU tars streamed (a read ends as
// soon as the archive reader has what it came for). Which kinds of image are checkpoints, and
// how they are read: src/format/checkpoint-image.ts.
import { NotFoundError, InvalidArgumentError } from '../errors';
import { openCheckpointImage, type BlobStore, type Descriptor } from '../format/checkpoint-image';
import type { CheckpointSource, SourceLimits } from '../format/checkpoint-source';
import { contentInfo, findImage, readContent, readContentBytes, type Connection } from './containerd';

function timestamp(t: { seconds: number; nanos: number } | undefined): string | undefined {
  if (!t || (t.seconds === 0 && t.nanos === 0)) return undefined;
  const ms = t.seconds * 1000 + Math.floor(t.nanos / 1e6);
  return new Date(ms).toISOString();
}

/** containerd's content store as the BlobStore of one image. */
export function contentBlobStore(conn: Connection, image: string): BlobStore {
  return {
    async read(d: Descriptor, maxBytes: number): Promise<Buffer> {
      const info = await contentInfo(conn, d.digest);
      if (!info) throw new NotFoundError(`image ${image}: blob ${d.digest} is not in containerd's content store`);
      if (info.size !== d.size) throw new InvalidArgumentError(`image ${image}: blob ${d.digest} is ${info.size} bytes in the content store, but its descriptor says ${d.size}`);
      try {
        return await readContentBytes(conn, d.digest, maxBytes);
      } catch (err) {
        if ((err as { code?: unknown }).code !== undefined) throw err;
        throw new InvalidArgumentError(`image ${image}: ${(err as Error).message}`);
      }
    },
    input(d: Descriptor, describe: string) {
      return {
        describe,
        async open() {
          if (!(await contentInfo(conn, d.digest))) throw new NotFoundError(`${describe} is not in containerd's content store`);
          const stream = readContent(conn, d.digest);
          return { stream, async close() { stream.destroy(); } };
        },
        // containerd's Read takes an offset and a size: an uncompressed layer is read in place.
        async openRandom() {
          const info = await contentInfo(conn, d.digest);
          if (!info) throw new NotFoundError(`${describe} is not in containerd's content store`);
          const size = info.size;
          return {
            size,
            async read(pos: number, len: number): Promise<Buffer> {
              const want = Math.max(0, Math.min(len, size - pos));
              if (want === 0) return Buffer.alloc(0);
              const parts: Buffer[] = [];
              let got = 0;
              for await (const chunk of readContent(conn, d.digest, pos, want)) {
                parts.push(chunk as Buffer);
                got += (chunk as Buffer).length;
                if (got > want) throw new InvalidArgumentError(`${describe}: containerd sent more than the ${want} bytes asked for`);
              }
              return Buffer.concat(parts, got);
            },
            async close() { /* each read is its own call */ },
          };
        },
      };
    },
  };
}

/** Image `name` of containerd (in the connection's namespace) as a checkpoint source. */
export async function openImageCheckpointSource(conn: Connection, name: string, limits: SourceLimits = {}): Promise<CheckpointSource> {
  const image = await findImage(conn, name);
  if (!image) {
    throw new NotFoundError(`${name} is neither a file or directory here nor an image in containerd (namespace ${conn.namespace})`);
  }
  if (!image.target) throw new InvalidArgumentError(`image ${name} has no target`);
  const t = image.target;
  const target: Descriptor = { mediaType: t.mediaType, digest: t.digest, size: t.size, annotations: t.annotations };
  return openCheckpointImage(name, target, contentBlobStore(conn, name), { ...limits, created: timestamp(image.createdAt) });
}
