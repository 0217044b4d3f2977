// Compression of what ferry writes (checkpoint archives, image layers): gzip through node:zlib,
// zstd through zstd-napi (libzstd, streaming), or none. Reading picks the method from the magic
// bytes instead (tar-reader.ts openArchiveStream), so only the writing side lives here.
import { PassThrough, Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { CompressStream } from 'zstd-napi';
import { InvalidArgumentError } from '../errors';
import { OciMediaType } from './layout';
import type { ArchiveCompression } from './tar-reader';

export type { ArchiveCompression };

export const COMPRESSIONS: readonly ArchiveCompression[] = ['zstd', 'gzip', 'none'];

export interface CompressorOptions {
  /** zstd 1..19 (default 3, libzstd's and Podman's default), gzip 1..9 (default 6). */
  level?: number;
  /**
   * zstd worker threads (libzstd's own; default: 2, so compression overlaps reading and does not
   * stall the event loop). 0 compresses on the calling thread.
   */
  workers?: number;
}

/** `--compress` as the user typed it, checked. */
export function parseCompression(value: string): ArchiveCompression {
  if ((COMPRESSIONS as readonly string[]).includes(value)) return value as ArchiveCompression;
  throw new InvalidArgumentError(`unknown compression ${JSON.stringify(value)}: use one of ${COMPRESSIONS.join(', ')}`);
}

/** A Transform that compresses (or, for 'none', passes bytes through unchanged). */
export function createCompressor(kind: ArchiveCompression, opts: CompressorOptions = {}): Transform {
  switch (kind) {
    case 'zstd':
      return new CompressStream({ compressionLevel: opts.level ?? 3, nbWorkers: opts.workers ?? 2 });
    case 'gzip':
      return zlib.createGzip({ level: opts.level ?? 6, chunkSize: 256 * 1024 });
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
    default:
      throw new InvalidArgumentError(`unknown compression ${JSON.stringify(kind)}`);
  }
}

/** OCI layer media type for a tar compressed this way. */
export function layerMediaType(kind: ArchiveCompression): string {
  switch (kind) {
    case 'zstd': return OciMediaType.layerZstd;
    case 'gzip': return OciMediaType.layerGzip;
    default: return OciMediaType.layer;
  }
}
