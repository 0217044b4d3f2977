// A process's memory read front to back, as memparse's hexdump and search need it: the pages
// image is streamed once (an archive or a checkpoint image has no random access, and a pages
// image may be gigabytes), and cut along the pagemap's present runs into pieces of whole pages,
// each with its virtual address and whether it continues the previous piece's memory. Pages of
// runs that are not present (in a parent image, lazy) are not in the pages image and are skipped.
import { InvalidArgumentError } from '../../errors';
import type { ImageStore } from './image-store';
import type { ProcessMemory } from './memory';

export interface MemoryPiece {
  /** Virtual address of the piece's first byte. */
  vaddr: bigint;
  /** A whole number of pages. */
  bytes: Buffer;
  /** True when this piece starts where the previous one ended (same run, or an adjacent run). */
  contiguous: boolean;
}

/** Default piece size: 256 pages of 4 KiB. */
export const DEFAULT_PIECE_BYTES = 256 * 4096;

export async function* memoryPieces(store: ImageStore, mem: ProcessMemory, pageSize: number, pieceBytes = DEFAULT_PIECE_BYTES): AsyncGenerator<MemoryPiece> {
  const runs = mem.pagemap.runs.filter((r) => r.present && r.nrPages > 0);
  if (runs.length === 0) return;
  const maxPiece = Math.max(pageSize, Math.floor(pieceBytes / pageSize) * pageSize);
  const need = mem.size;
  let runIndex = 0;
  let inRun = 0; // bytes of runs[runIndex] already handed out or buffered
  let piece = Buffer.alloc(Math.min(maxPiece, runs[0].nrPages * pageSize));
  let filled = 0;
  let pieceAddr = runs[0].vaddr;
  let previousEnd: bigint | undefined;
  let consumed = 0; // bytes of the pages image read so far

  const finishPiece = (): MemoryPiece => {
    const out = { vaddr: pieceAddr, bytes: piece.subarray(0, filled), contiguous: previousEnd === pieceAddr };
    previousEnd = pieceAddr + BigInt(filled);
    return out;
  };

  for await (const chunk of store.stream(mem.pagesName)) {
    let at = 0;
    while (at < chunk.length && runIndex < runs.length) {
      const run = runs[runIndex];
      const runBytes = run.nrPages * pageSize;
      const take = Math.min(chunk.length - at, piece.length - filled);
      chunk.copy(piece, filled, at, at + take);
      filled += take;
      at += take;
      inRun += take;
      if (filled === piece.length) {
        yield finishPiece();
        if (inRun === runBytes) {
          runIndex++;
          inRun = 0;
        }
        if (runIndex < runs.length) {
          const next = runs[runIndex];
          pieceAddr = next.vaddr + BigInt(inRun);
          // A fresh buffer: the consumer may keep the previous piece (the search keeps a tail).
          piece = Buffer.alloc(Math.min(maxPiece, next.nrPages * pageSize - inRun));
          filled = 0;
        }
      }
    }
    consumed += at;
    if (runIndex >= runs.length) break;
  }
  if (runIndex < runs.length) {
    throw new InvalidArgumentError(`${store.describe(mem.pagesName)}: ends after ${consumed} bytes, but the pagemap of process ${mem.pid} says ${need} bytes: truncated`);
  }
}
