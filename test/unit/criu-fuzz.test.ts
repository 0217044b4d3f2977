// The CRIU image decoder on hostile input: 10,000 seeded cases of truncated, bit-flipped,
// size-field-overwritten, random and garbage-extended images, each run through everything that
// reads images (verify, the process tree, command lines, environments, open files, sockets,
// memory). Every case must end in a result or a FerryError (a clear error naming the file), never
// another exception; no case may take long (no hang), and memory must stay bounded: no read asks
// for more than the file holds, and the process's buffers stay below a fixed bound.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FerryError } from '../../src/errors';
import { CheckpointImages, flattenTree } from '../../src/format/criu/explore';
import type { ByteRange, ImageStore } from '../../src/format/criu/image-store';
import { MapImageStore } from '../../src/format/criu/map-store';
import { verifyCriuImages } from '../../src/format/criu/verify';
import { readPstree } from '../../src/format/criu/images';
import { writeFakeCheckpoint } from '../helpers/criu-images';

/** mulberry32: a small seeded PRNG, so a failing case can be replayed by its number. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Wraps a store and fails the test if any read asks for more than the file holds. */
class BoundedStore implements ImageStore {
  maxAsked = 0;
  constructor(private readonly inner: MapImageStore, private readonly sizes: Map<string, number>) {}
  describe(n: string) { return this.inner.describe(n); }
  names() { return this.inner.names(); }
  size(n: string) { return this.inner.size(n); }
  async read(n: string, max: number) {
    const b = await this.inner.read(n, max);
    this.maxAsked = Math.max(this.maxAsked, b.length);
    return b;
  }
  async readRanges(n: string, ranges: readonly ByteRange[]) {
    const size = this.sizes.get(n) ?? 0;
    for (const r of ranges) if (r.offset + r.length > size) throw new Error(`read past the end of ${n}: ${r.offset}+${r.length} > ${size}`);
    return this.inner.readRanges(n, ranges);
  }
  stream(n: string) { return this.inner.stream(n); }
}

let base: Map<string, Buffer>;
beforeAll(() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-criu-fuzz-'));
  try {
    writeFakeCheckpoint(dir);
    base = new Map(fs.readdirSync(dir).map((n) => [n, fs.readFileSync(path.join(dir, n))]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function mutate(rand: () => number, data: Buffer): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  switch (pick(6)) {
    case 0: return data.subarray(0, pick(data.length + 1)); // truncated
    case 1: { // bit flips
      const b = Buffer.from(data);
      for (let i = 0, n = 1 + pick(8); i < n && b.length; i++) b[pick(b.length)] ^= 1 << pick(8);
      return b;
    }
    case 2: { // a u32 (size field, magic, varint) overwritten with an extreme value
      const b = Buffer.from(data);
      if (b.length >= 4) b.writeUInt32LE([0xffffffff, 0x7fffffff, b.length, b.length + 1, 0][pick(5)], pick(b.length - 3));
      return b;
    }
    case 3: { // random bytes of a random length
      const b = Buffer.alloc(pick(256));
      for (let i = 0; i < b.length; i++) b[i] = pick(256);
      return b;
    }
    case 4: { // garbage appended
      const tail = Buffer.alloc(1 + pick(64));
      for (let i = 0; i < tail.length; i++) tail[i] = pick(256);
      return Buffer.concat([data, tail]);
    }
    default: { // a byte run replaced by 0x80 (unterminated varints)
      const b = Buffer.from(data);
      const at = pick(b.length);
      b.fill(0x80, at, Math.min(b.length, at + 1 + pick(16)));
      return b;
    }
  }
}

const outcomes = { ok: 0, refused: 0 };

async function exercise(store: ImageStore): Promise<void> {
  const attempt = async (f: () => Promise<unknown>) => {
    try {
      await f();
      outcomes.ok++;
    } catch (err) {
      if (!(err instanceof FerryError)) throw err;
      // A clear error names the image it is about.
      expect(err.message).toMatch(/fuzz:|process \d+|CRIU image|no process/);
      outcomes.refused++;
    }
  };
  await attempt(() => verifyCriuImages(store));
  const images = new CheckpointImages(store);
  await attempt(async () => flattenTree(await images.processTree()));
  let pids: number[] = [];
  await attempt(async () => { pids = (await readPstree(store)).map((p) => p.pid); });
  for (const pid of pids.slice(0, 8)) {
    await attempt(() => images.cmdline(pid));
    await attempt(() => images.environment(pid));
    await attempt(() => images.openFiles(pid));
    await attempt(() => images.sockets(pid));
    await attempt(async () => (await images.memory(pid)).read(0x7ffd_0000_0000n, 0x7ffd_0000_3000n));
  }
}

const CASES = 10000;
const MEMORY_BOUND = 512 * 1024 * 1024;

test(`${CASES} mutated image sets: only results or clear errors, no hang, bounded memory`, async () => {
  const rand = prng(0x5eed);
  const names = [...base.keys()];
  let slowest = 0;
  let maxBuffers = 0;
  for (let i = 0; i < CASES; i++) {
    const files = new Map(base);
    // Mostly one file mutated, sometimes two, sometimes one removed.
    for (let k = 0, n = rand() < 0.8 ? 1 : 2; k < n; k++) {
      const name = names[Math.floor(rand() * names.length)];
      if (rand() < 0.05) files.delete(name);
      else files.set(name, mutate(rand, base.get(name) as Buffer));
    }
    const sizes = new Map([...files].map(([n, b]) => [n, b.length]));
    const store = new BoundedStore(new MapImageStore('fuzz:', files), sizes);
    const started = process.hrtime.bigint();
    try {
      await exercise(store);
    } catch (err) {
      throw new Error(`case ${i}: ${(err as Error).stack}`);
    }
    slowest = Math.max(slowest, Number(process.hrtime.bigint() - started) / 1e6);
    if (i % 500 === 0) maxBuffers = Math.max(maxBuffers, process.memoryUsage().arrayBuffers);
  }
  // The mutations reach the decoder: many reads are refused, and the untouched files still read.
  expect(outcomes.refused).toBeGreaterThan(CASES);
  expect(outcomes.ok).toBeGreaterThan(CASES);
  expect(slowest).toBeLessThan(2000);
  expect(maxBuffers).toBeLessThan(MEMORY_BOUND);
}, 300000);
