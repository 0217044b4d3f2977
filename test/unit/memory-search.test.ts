// `ferry inspect --memory PID --search`: matches are found wherever they are in contiguous
// memory — across the 256-page pieces the pages image is streamed in, and across adjacent
// pagemap runs — with their context on both sides, and never across a gap between runs. A
// seeded property test compares the streamed search with a plain search of each contiguous
// region held whole; the same search through a tar archive reads the pages image once, as a
// stream.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pagemapEntry, pagemapHead } from '../../api/gen/criu/pagemap';
import { memoryMatches, hexdump } from '../../src/ferry/commands/memory-output';
import { openCheckpointSource } from '../../src/format/checkpoint-source';
import { MapImageStore } from '../../src/format/criu/map-store';
import { ProcessMemory } from '../../src/format/criu/memory';
import { memoryPieces } from '../../src/format/criu/memory-chunks';
import { PAGE_SIZE } from '../../src/format/criu/magic';
import type { ImageStore } from '../../src/format/criu/image-store';
import { encodeEntry, imageFile, writeFakeCheckpoint } from '../helpers/criu-images';

const PIECE = 256 * PAGE_SIZE;
const BASE = 0x7f00_0000_0000n;

interface Run { vaddr: bigint; pages: number }

function pagemapFile(pagesId: number, runs: Run[]): Buffer {
  return imageFile('PAGEMAP', [
    encodeEntry(pagemapHead, { pagesId }, [1]),
    ...runs.map((r) => encodeEntry(pagemapEntry, { vaddr: r.vaddr, compatNrPages: 0, flags: 4, nrPages: BigInt(r.pages) }, [1, 2])),
  ]);
}

/** A store holding pagemap-1.img and pages-5.img for these runs and bytes. */
function store(runs: Run[], pages: Buffer): MapImageStore {
  return new MapImageStore('mem:', new Map([['pagemap-1.img', pagemapFile(5, runs)], ['pages-5.img', pages]]));
}

/** Deterministic filler without the letters the needles use. */
function filler(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = 0x30 + ((x >> 16) % 10); // digits only
  }
  return b;
}

async function search(s: ImageStore, q: { text?: string; re?: RegExp; context: number }) {
  const mem = await ProcessMemory.open(s, 1, PAGE_SIZE);
  return memoryMatches(s, mem, PAGE_SIZE, q);
}

test('a text across a piece boundary, and across the boundary of two adjacent runs, is found with context from both sides', async () => {
  // One run of 600 pages (pieces of 256, 256, 88), then an adjacent run of 4 pages.
  const runs = [{ vaddr: BASE, pages: 600 }, { vaddr: BASE + BigInt(600 * PAGE_SIZE), pages: 4 }];
  const pages = filler(604 * PAGE_SIZE);
  const at = [PIECE - 5, 2 * PIECE - 1, 600 * PAGE_SIZE - 3];
  for (const a of at) pages.write('FERRY_NEEDLE', a, 'latin1');
  const found = await search(store(runs, pages), { text: 'FERRY_NEEDLE', context: 4 });
  expect(found.map((m) => m.address)).toEqual(at.map((a) => `0x${(BASE + BigInt(a)).toString(16)}`));
  for (const [i, m] of found.entries()) {
    expect(m.context).toBe(pages.subarray(at[i] - 4, at[i] + 12 + 4).toString('latin1'));
  }
  // A regular expression across a boundary too.
  const re = await search(store(runs, pages), { re: /FERRY_N[A-Z]+/g, context: 0 });
  expect(re.map((m) => [m.address, m.match])).toEqual(at.map((a) => [`0x${(BASE + BigInt(a)).toString(16)}`, 'FERRY_NEEDLE']));
});

test('bytes of two runs with a gap between them are not one match', async () => {
  const runs = [{ vaddr: BASE, pages: 1 }, { vaddr: BASE + BigInt(5 * PAGE_SIZE), pages: 1 }];
  const pages = filler(2 * PAGE_SIZE);
  pages.write('FERRY_', PAGE_SIZE - 6, 'latin1');
  pages.write('NEEDLE', PAGE_SIZE, 'latin1');
  expect(await search(store(runs, pages), { text: 'FERRY_NEEDLE', context: 2 })).toEqual([]);
  expect((await search(store(runs, pages), { text: 'NEEDLE', context: 2 })).map((m) => m.address)).toEqual([`0x${(BASE + BigInt(5 * PAGE_SIZE)).toString(16)}`]);
});

/** A plain search of each contiguous region held whole: the oracle. */
function oracle(runs: Run[], pages: Buffer, q: { text?: string; re?: RegExp; context: number }) {
  const out: { address: string; match: string; context: string }[] = [];
  let off = 0;
  let i = 0;
  while (i < runs.length) {
    let j = i;
    let len = runs[i].pages * PAGE_SIZE;
    while (j + 1 < runs.length && runs[j + 1].vaddr === runs[j].vaddr + BigInt(runs[j].pages * PAGE_SIZE)) len += runs[++j].pages * PAGE_SIZE;
    const region = pages.subarray(off, off + len);
    const text = region.toString('latin1');
    const add = (s: number, m: string) => out.push({
      address: `0x${(runs[i].vaddr + BigInt(s)).toString(16)}`, match: m,
      context: text.slice(Math.max(0, s - q.context), s + m.length + q.context).replace(/[^\x20-\x7e]/g, '.'),
    });
    if (q.text !== undefined) {
      for (let k = text.indexOf(q.text); k >= 0; k = text.indexOf(q.text, k + 1)) add(k, q.text);
    } else {
      const re = new RegExp(q.re!.source, 'g');
      for (let m = re.exec(text); m; m = re.exec(text)) {
        add(m.index, m[0]);
        if (m[0] === '') re.lastIndex++;
      }
    }
    off += len;
    i = j + 1;
  }
  return out;
}

test('seeded: the streamed search finds exactly what a search of each whole region finds (texts, overlapping texts, expressions, contexts)', async () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 12; round++) {
    const runs: Run[] = [];
    let vaddr = BASE;
    let total = 0;
    for (let r = 0; r < 1 + rnd(4); r++) {
      const n = 1 + rnd(400);
      runs.push({ vaddr, pages: n });
      total += n;
      vaddr += BigInt(n * PAGE_SIZE) + (rnd(2) === 0 ? 0n : BigInt((1 + rnd(3)) * PAGE_SIZE));
    }
    const pages = filler(total * PAGE_SIZE, round + 7);
    const needle = ['XYX', 'XYXYX', 'ABCDEFGHIJKLMNOP'][rnd(3)];
    for (let k = 0; k < 30; k++) {
      // Near piece and run boundaries more often than anywhere else.
      const near = rnd(2) === 0 ? Math.max(0, (1 + rnd(Math.max(1, Math.floor(pages.length / PIECE)))) * PIECE - rnd(20)) : rnd(pages.length);
      pages.write(needle, Math.min(near, pages.length - needle.length), 'latin1');
    }
    const s = store(runs, pages);
    const context = rnd(40);
    for (const q of [{ text: needle, context }, { text: 'XYX', context }, { re: /[A-Z]{3,}/g, context }, { re: /Y[0-9]*X/g, context }]) {
      expect({ round, q: String(q.text ?? q.re), found: await search(s, q) }).toEqual({ round, q: String(q.text ?? q.re), found: oracle(runs, pages, q) });
    }
  }
});

test('the pages image of an archive is streamed once for a search and a hexdump; a pages image shorter than its pagemap is an error naming it', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-memsearch-'));
  try {
    const stage = path.join(tmp, 'stage');
    const ck = path.join(stage, 'checkpoint');
    writeFakeCheckpoint(ck);
    fs.writeFileSync(path.join(stage, 'config.dump'), '{}');
    fs.writeFileSync(path.join(stage, 'spec.dump'), '{}');
    // Process 1 gets 300 pages at BASE with a needle across the first piece boundary.
    const pages = filler(300 * PAGE_SIZE);
    pages.write('FERRY_NEEDLE', PIECE - 6, 'latin1');
    fs.writeFileSync(path.join(ck, 'pagemap-1.img'), pagemapFile(200, [{ vaddr: BASE, pages: 300 }]));
    fs.writeFileSync(path.join(ck, 'pages-200.img'), pages);
    const archive = path.join(tmp, 'a.tar.zst');
    execFileSync('tar', ['--zstd', '-cf', archive, '-C', stage, '.']);
    const src = await openCheckpointSource(archive);
    let streams = 0;
    let ranges = 0;
    const counting: ImageStore = {
      describe: (n) => src.images.describe(n), names: () => src.images.names(), size: (n) => src.images.size(n), read: (n, m) => src.images.read(n, m),
      readRanges: (n, r) => { ranges++; return src.images.readRanges(n, r); },
      stream: (n) => { streams++; return src.images.stream(n); },
    };
    const mem = await ProcessMemory.open(counting, 1, PAGE_SIZE);
    const found = await memoryMatches(counting, mem, PAGE_SIZE, { text: 'FERRY_NEEDLE', context: 3 });
    expect(found).toEqual([{ address: `0x${(BASE + BigInt(PIECE - 6)).toString(16)}`, match: 'FERRY_NEEDLE', context: pages.subarray(PIECE - 9, PIECE + 9).toString('latin1') }]);
    let rows = 0;
    for await (const line of hexdump(counting, mem, PAGE_SIZE)) if (line !== '*') rows++;
    expect(rows).toBe(300 * PAGE_SIZE / 16);
    expect({ streams, ranges }).toEqual({ streams: 2, ranges: 0 });

    fs.truncateSync(path.join(ck, 'pages-200.img'), 100 * PAGE_SIZE + 10);
    execFileSync('tar', ['--zstd', '-cf', archive, '-C', stage, '.']);
    const short = await openCheckpointSource(archive);
    const mem2 = await ProcessMemory.open(short.images, 1, PAGE_SIZE);
    await expect(memoryMatches(short.images, mem2, PAGE_SIZE, { text: 'x', context: 0 })).rejects.toThrow(
      `${archive}:checkpoint/pages-200.img: ends after ${100 * PAGE_SIZE + 10} bytes, but the pagemap of process 1 says ${300 * PAGE_SIZE} bytes: truncated`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('pieces are whole pages of at most 256 pages, in address order, contiguous only where memory is', async () => {
  const runs = [{ vaddr: BASE, pages: 300 }, { vaddr: BASE + BigInt(300 * PAGE_SIZE), pages: 2 }, { vaddr: BASE + BigInt(400 * PAGE_SIZE), pages: 1 }];
  const s = store(runs, filler(303 * PAGE_SIZE));
  const mem = await ProcessMemory.open(s, 1, PAGE_SIZE);
  const got: [string, number, boolean][] = [];
  for await (const p of memoryPieces(s, mem, PAGE_SIZE)) got.push([(p.vaddr - BASE).toString(16), p.bytes.length / PAGE_SIZE, p.contiguous]);
  expect(got).toEqual([['0', 256, false], ['100000', 44, true], ['12c000', 2, true], ['190000', 1, false]]);
});

test('--context is bounded', async () => {
  const s = store([{ vaddr: BASE, pages: 1 }], filler(PAGE_SIZE));
  await expect(search(s, { text: 'x', context: 2 * 1024 * 1024 })).rejects.toThrow('--context must be at most 1048576 bytes');
});
