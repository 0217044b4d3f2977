// checkpointctl memparse's two views of a process's memory: a hexdump of the pages (address,
// 16 bytes in hex, ASCII; repeated rows folded into `*`), and the places where a text or a
// regular expression occurs, with context. Pages are streamed run by run, never held whole.
import type { ImageStore } from '../../format/criu/image-store';
import type { ProcessMemory } from '../../format/criu/memory';

const CHUNK_PAGES = 256;

/** The present runs of a process's memory, in chunks of at most CHUNK_PAGES pages: [vaddr, bytes]. */
async function* chunks(store: ImageStore, mem: ProcessMemory, pageSize: number): AsyncGenerator<[bigint, Buffer]> {
  for (const run of mem.pagemap.runs) {
    if (!run.present) continue;
    for (let p = 0; p < run.nrPages; p += CHUNK_PAGES) {
      const n = Math.min(CHUNK_PAGES, run.nrPages - p);
      const [buf] = await store.readRanges(mem.pagesName, [{ offset: run.pagesOffset + p * pageSize, length: n * pageSize }]);
      yield [run.vaddr + BigInt(p * pageSize), buf];
    }
  }
}

export async function* hexdump(store: ImageStore, mem: ProcessMemory, pageSize: number): AsyncGenerator<string> {
  let previous: Buffer | undefined;
  let folded = false;
  for await (const [vaddr, buf] of chunks(store, mem, pageSize)) {
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
  address: bigint;
  match: string;
  context: string;
}

export async function memoryMatches(store: ImageStore, mem: ProcessMemory, pageSize: number, q: { text?: string; re?: RegExp; context: number }): Promise<{ address: string; match: string; context: string }[]> {
  const out: { address: string; match: string; context: string }[] = [];
  for await (const [vaddr, buf] of chunks(store, mem, pageSize)) {
    const text = buf.toString('latin1');
    const found: [number, string][] = [];
    if (q.text !== undefined) {
      for (let i = text.indexOf(q.text); i >= 0 && q.text !== ''; i = text.indexOf(q.text, i + 1)) found.push([i, q.text]);
    } else if (q.re) {
      q.re.lastIndex = 0;
      for (let m = q.re.exec(text); m; m = q.re.exec(text)) {
        found.push([m.index, m[0]]);
        if (m[0] === '') q.re.lastIndex++;
      }
    }
    for (const [i, m] of found) {
      const ctx = text.slice(Math.max(0, i - q.context), i + m.length + q.context).replace(/[^\x20-\x7e]/g, '.');
      out.push({ address: `0x${(vaddr + BigInt(i)).toString(16)}`, match: m, context: ctx });
    }
  }
  return out;
}
