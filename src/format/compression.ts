// Compression of what ferry writes (checkpoint archives, image layers): gzip through node:zlib,
// zstd through zstd-napi (libzstd, streaming), or none. Reading picks the method from the magic
// bytes instead (tar-reader.ts openArchiveStream), so only the writing side lives here.
import * as os from 'node:os';
import { PassThrough, Transform } from 'node:stream';
import { zlib } from '../loader/on-first-use';
import { CompressStream } from 'zstd-napi';
import { InvalidArgumentError } from '../errors';
import { OciMediaType } from './layout';
import type { ArchiveCompression } from './tar-reader';

export type { ArchiveCompression };

export const COMPRESSIONS: readonly ArchiveCompression[] = ['zstd', 'gzip', 'none'];

export interface CompressorOptions {
  /**
   * zstd 1..19, gzip 1..9 (default 6). zstd's default is 1, not libzstd's 3: measured here, level
   * 3 took 1.8× as long for the same size on the benchmark's memory (base64 text) and gave 8 %
   * smaller output on binaries (docs/benchmarks.md); a checkpoint is written while its container
   * waits, so speed wins.
   */
  level?: number;
  /**
   * zstd worker threads (libzstd's own). Default: one when the machine has two CPUs or more, so
   * compression runs beside the thread that reads the files (0 compresses on the calling thread).
   * Measured on the 2-CPU VM of docs/benchmarks.md, 144 MiB: 0 workers 530–600 ms, 1 worker
   * 400–440 ms, tar | zstd -1 550 ms at load 3.5; at load 20+ two workers were 2–3× slower than
   * none (the workers and the reader then fight over the same two CPUs).
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
      return new CompressStream({ compressionLevel: opts.level ?? 1, nbWorkers: opts.workers ?? (os.availableParallelism() > 1 ? 1 : 0) });
    case 'gzip':
      return zlib().createGzip({ level: opts.level ?? 6, chunkSize: 256 * 1024 });
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
