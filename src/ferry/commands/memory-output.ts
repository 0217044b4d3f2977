// checkpointctl memparse's two views of a process's memory: a hexdump of the pages (address,
// 16 bytes in hex, ASCII; repeated rows folded into `*`), and the places where a text or a
// regular expression occurs, with context. The pages image is streamed once, front to back
// (src/format/criu/memory-chunks.ts), never held whole.
//
// The search keeps a window across pieces of contiguous memory, so a match that crosses the
// boundary between two pieces (or two adjacent pagemap runs) is found, with its context on
// both sides. A text is found wherever it is; a regular expression's match is found across a
// boundary when it is at most MAX_REGEX_SPAN bytes long (checkpointctl finds neither).
import { InvalidArgumentError } from '../../errors';
import type { ImageStore } from '../../format/criu/image-store';
import type { ProcessMemory } from '../../format/criu/memory';
import { memoryPieces, type MemoryPiece } from '../../format/criu/memory-chunks';

/** Longest regular-expression match guaranteed to be found across a piece boundary. */
export const MAX_REGEX_SPAN = 64 * 1024;
/** Largest --context (bytes on each side of a match). */
export const MAX_CONTEXT = 1024 * 1024;

export async function* hexdump(store: ImageStore, mem: ProcessMemory, pageSize: number): AsyncGenerator<string> {
  let previous: Buffer | undefined;
  let folded = false;
  for await (const { vaddr, bytes: buf } of memoryPieces(store, mem, pageSize)) {
    for (let i = 0; i < buf.length; i += 16) {
      const row = buf.subarray(i, i + 16);
      if (previous && row.equals(previous)) {
        if (!folded) yield '*';
        folded = true;
        continue;
      }
      previous = Buffer.from(row);
      folded = false;
      const hexPart = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
      yield `${(vaddr + BigInt(i)).toString(16).padStart(16, '0')}  ${hexPart.padEnd(47)}  |${ascii}|`;
    }
  }
}

export interface MemoryMatch {
  address: string;
  match: string;
  context: string;
}

export interface MemoryQuery {
  text?: string;
  re?: RegExp;
  /** Bytes of context on each side. */
  context: number;
}

interface Found {
  start: number;
  end: number;
  match: string;
}

/**
 * Where the text or the expression occurs in the process's memory. Text matches may overlap
 * (every position is tried); expression matches follow RegExp.exec. Memory is searched as
 * latin1 (one character per byte); the text is looked for as its UTF-8 bytes.
 */
export async function memoryMatches(store: ImageStore, mem: ProcessMemory, pageSize: number, q: MemoryQuery): Promise<MemoryMatch[]> {
  if (q.context > MAX_CONTEXT) throw new InvalidArgumentError(`--context must be at most ${MAX_CONTEXT} bytes`);
  const needle = q.text !== undefined ? Buffer.from(q.text, 'utf8') : undefined;
  if (needle !== undefined && needle.length === 0) return [];
  if (needle === undefined && !q.re) return [];
  const re = q.re ? new RegExp(q.re.source, q.re.flags.includes('g') ? q.re.flags : `${q.re.flags}g`) : undefined;
  // A match too near the window's end may still grow (an expression), or lack context that the
  // next piece brings: it waits for more memory. A position more than `span` bytes before the
  // end has been searched for good.
  const span = needle ? needle.length : MAX_REGEX_SPAN;
  const out: MemoryMatch[] = [];

  let window: Buffer = Buffer.alloc(0);
  let windowAddr = 0n;
  let from = 0; // where the search goes on within the window
  let text: string | undefined; // the window as latin1, for the expression (undefined: not made yet)

  const find = (at: number): Found | undefined => {
    if (needle) {
      const i = window.indexOf(needle, at);
      return i < 0 ? undefined : { start: i, end: i + needle.length, match: q.text as string };
    }
    text ??= window.toString('latin1');
    const r = re as RegExp;
    r.lastIndex = at;
    const m = r.exec(text);
    return m ? { start: m.index, end: m.index + m[0].length, match: m[0] } : undefined;
  };

  const report = (f: Found) => {
    const ctx = window.subarray(Math.max(0, f.start - q.context), Math.min(window.length, f.end + q.context)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
    out.push({ address: `0x${(windowAddr + BigInt(f.start)).toString(16)}`, match: f.match, context: ctx });
  };

  /** Reports what the window settles; `final` when no contiguous memory follows. */
  const scan = (final: boolean) => {
    let deferred: number | undefined;
    for (let f = find(from); f; f = find(from)) {
      if (!final && f.end + q.context > window.length - (needle ? 0 : span)) {
        deferred = f.start;
        break;
      }
      report(f);
      from = needle ? f.start + 1 : f.end > f.start ? f.end : f.end + 1;
      if (from > window.length) break;
    }
    if (final) return;
    // No match can start before this and still end beyond the window unseen.
    const settled = Math.max(from, window.length - span);
    from = deferred !== undefined ? Math.min(deferred, settled) : settled;
    from = Math.max(0, Math.min(from, window.length));
    // Keep what the next scan needs: the context before `from`, and everything after it.
    const keepFrom = Math.max(0, from - q.context);
    if (keepFrom > 0) {
      window = window.subarray(keepFrom);
      text = undefined;
      windowAddr += BigInt(keepFrom);
      from -= keepFrom;
    }
  };

  const add = (p: MemoryPiece) => {
    text = undefined;
    if (!p.contiguous && window.length > 0) {
      scan(true);
      window = Buffer.alloc(0);
      from = 0;
    }
    if (window.length === 0) {
      windowAddr = p.vaddr;
      window = p.bytes;
    } else {
      window = Buffer.concat([window, p.bytes]);
    }
  };

  for await (const piece of memoryPieces(store, mem, pageSize)) {
    add(piece);
    scan(false);
  }
  if (window.length > 0) scan(true);
  return out;
}
