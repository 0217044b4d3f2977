// containerd.services.content.v1.Content: blobs by digest. Reads stream (a checkpoint blob can be
// gigabytes); writes go through the Write stream in chunks and are verified by containerd against
// the expected digest at commit.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ContentDefinition, Info, WriteAction } from '../../../api/gen/containerd/services/content/v1/content';
import type { Connection } from './connection';

export type { Info as ContentInfo };

const WRITE_CHUNK = 1024 * 1024;

export async function contentInfo(conn: Connection, digest: string): Promise<Info | undefined> {
  try {
    return (await conn.unary(ContentDefinition, 'info', { digest })).info;
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw err;
  }
}

/** The blob as a byte stream (offset/size select a range; size 0 reads to the end). */
export function readContent(conn: Connection, digest: string, offset = 0, size = 0): Readable {
  const call = conn.serverStream(ContentDefinition, 'read', { digest, offset, size });
  return Readable.from((async function* () {
    for await (const chunk of call) yield Buffer.from(chunk.data);
  })());
}

/**
 * The whole blob in memory, refused when it is larger than `maxBytes` (blobs come from a store
 * that may hold anything: a manifest or config is small, a hostile one need not be).
 */
export async function readContentBytes(conn: Connection, digest: string, maxBytes: number): Promise<Buffer> {
  const info = await contentInfo(conn, digest);
  if (!info) throw Object.assign(new Error(`content ${digest}: not found`), { code: 5, details: `content ${digest}: not found` });
  if (info.size > maxBytes) throw new Error(`content ${digest} is ${info.size} bytes, more than the ${maxBytes} allowed for it`);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of readContent(conn, digest)) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) throw new Error(`content ${digest} grew beyond ${maxBytes} bytes while being read`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

export interface WriteOptions {
  /** Write reference (containerd locks it while we write); default derived from the digest. */
  ref?: string;
  labels?: Record<string, string>;
  /** Called with the bytes written so far. */
  onProgress?: (written: number) => void;
}

/**
 * Writes a blob whose digest and size are known (`sha256:…`). Returns without writing when the
 * store already has it. The caller keeps it from garbage collection with a lease or labels.
 */
export async function writeContent(conn: Connection, data: Buffer | AsyncIterable<Buffer>, expected: string, total: number, opts: WriteOptions = {}): Promise<void> {
  if (await contentInfo(conn, expected)) return;
  const ref = opts.ref ?? `ferry-${expected}`;
  const call = conn.bidiStream(ContentDefinition, 'write');
  const roundTrip = async (req: Parameters<typeof call.write>[0]) => {
    await call.write(req);
    const res = await call.read();
    if (!res) throw new Error(`content write ${ref}: containerd ended the stream`);
    return res;
  };
  try {
    // STAT first: an interrupted earlier write under the same ref continues at its offset.
    const stat = await roundTrip({ action: WriteAction.STAT, ref, total, expected });
    let offset = 0;
    const resumeAt = stat.offset;
    const chunks = Buffer.isBuffer(data) ? chunked(data) : data;
    for await (const chunk of chunks) {
      let piece = chunk;
      if (offset + piece.length <= resumeAt) { offset += piece.length; continue; }
      if (offset < resumeAt) { piece = piece.subarray(resumeAt - offset); offset = resumeAt; }
      for (let i = 0; i < piece.length; i += WRITE_CHUNK) {
        const part = piece.subarray(i, i + WRITE_CHUNK);
        await roundTrip({ action: WriteAction.WRITE, ref, offset, data: part });
        offset += part.length;
        opts.onProgress?.(offset);
      }
    }
    if (offset !== total) throw new Error(`content write ${ref}: ${offset} bytes written, ${total} expected`);
    await roundTrip({ action: WriteAction.COMMIT, ref, total, expected, labels: opts.labels ?? {} });
    call.end();
  } catch (err) {
    call.cancel();
    if ((err as { code?: number }).code === 6 /* ALREADY_EXISTS */) return;
    throw err;
  }
}

/** Writes an in-memory blob, computing its digest; returns its descriptor fields. */
export async function writeContentBytes(conn: Connection, data: Buffer, opts: WriteOptions = {}): Promise<{ digest: string; size: number }> {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  await writeContent(conn, data, digest, data.length, opts);
  return { digest, size: data.length };
}

export async function deleteContent(conn: Connection, digest: string): Promise<void> {
  await conn.unary(ContentDefinition, 'delete', { digest });
}

async function* chunked(b: Buffer): AsyncIterable<Buffer> {
  for (let i = 0; i < b.length; i += WRITE_CHUNK) yield b.subarray(i, i + WRITE_CHUNK);
}
