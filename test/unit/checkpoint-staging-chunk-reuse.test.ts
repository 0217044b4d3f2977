// The zstd worker decompresses into memory the main thread handed back (chunk-leases.ts). A
// chunk handed back while a write of it is still in flight would be overwritten by the next
// output and land corrupt in a staged image, silently. These tests stage archives built so
// that such a mistake shows: every byte distinct from the bytes around it (random), bodies
// that start and end anywhere inside the worker's 1 MiB chunks and span several of them, small
// files between bulk ones, and writes held back in the threadpool queue (slow disk) so that the
// worker runs far ahead of them. Each staged file is compared byte for byte.

import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stageCheckpointArchive } from '../../src/format/archive-staging';
import { ChunkLeases } from '../../src/format/chunk-leases';
import { readTarEntries, ZSTD_WINDOW_LOG_MAX } from '../../src/format/tar-reader';
import { zstdDecompressFileInWorker } from '../../src/format/zstd-file-worker';
import { recordingLogger } from '../corpus/fs-snapshot';
import { buildTar, file, RawEntry } from '../corpus/tar-writer';

const MiB = 1 << 20;
// The fs module object itself (an `import * as` binding is a read-only view of it): the writes
// of background-writes.ts are held back by replacing its `write`.
const coreFs = require('node:fs') as typeof fs;
let tmp: string;
let bundle: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-chunk-reuse-'));
  bundle = path.join(tmp, 'bundle');
  fs.mkdirSync(bundle);
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const random = (n: number): Buffer => randomFillSync(Buffer.allocUnsafe(n));

function zstdFile(data: Buffer, name: string): string {
  const plain = path.join(tmp, `${name}.plain`);
  fs.writeFileSync(plain, data);
  const out = path.join(tmp, name);
  execFileSync('zstd', ['-q', '-1', '-f', '-o', out, plain]);
  fs.rmSync(plain);
  return out;
}

/**
 * ~26 MiB of incompressible entries: bulk bodies (written in the background) of sizes that are
 * no multiple of anything the reader or worker uses, each followed by small files (written
 * synchronously from the same chunks), so chunk boundaries fall inside bodies and headers.
 */
function mixedEntries(): RawEntry[] {
  const entries: RawEntry[] = [];
  const bulkSizes = [3 * MiB + 17, 256 * 1024, MiB - 511, 2 * MiB + 4099, 5 * MiB + 1, 300_001, MiB, 7 * MiB + 12_345, 1_500_007, 4 * MiB - 3];
  bulkSizes.forEach((size, i) => {
    entries.push(file(`pages-${i}.img`, random(size), 0o600));
    for (let j = 0; j < 7; j++) entries.push(file(`small/${i}-${j}.img`, random(1 + ((i * 7 + j) * 3001) % 60_000)));
  });
  return entries;
}

function expectStaged(dir: string, entries: RawEntry[]): void {
  for (const e of entries) {
    const staged = fs.readFileSync(path.join(dir, e.name as string));
    if (!staged.equals(e.data as Buffer)) {
      const data = e.data as Buffer;
      let at = 0;
      while (at < staged.length && at < data.length && staged[at] === data[at]) at++;
      throw new Error(`${e.name as string}: staged ${staged.length} bytes differ from the archive's ${data.length} at byte ${at}`);
    }
  }
}

/** Holds each threadpool write back for a while: the worker decompresses on meanwhile. */
function slowWrites(maxDelayMs: number): jest.SpyInstance {
  const realWrite = coreFs.write;
  let n = 0;
  return jest.spyOn(coreFs, 'write').mockImplementation(((...args: unknown[]) => {
    const delay = (n++ * 7) % (maxDelayMs + 1);
    setTimeout(() => {
      // A buffer handed back to the worker meanwhile is detached here: fs.write refuses it.
      try {
        (realWrite as (...a: unknown[]) => void)(...args);
      } catch (err) {
        (args[args.length - 1] as (err: unknown) => void)(err);
      }
    }, delay);
  }) as unknown as typeof fs.write);
}

test('a 26 MiB tar+zstd archive with bodies across chunk boundaries is staged byte for byte', async () => {
  const entries = mixedEntries();
  const archive = zstdFile(buildTar(entries), 'ckpt.tar.zst');
  expect(fs.statSync(archive).size).toBeGreaterThanOrEqual(8 * MiB); // the worker path
  const { dir } = await stageCheckpointArchive(archive, bundle, recordingLogger());
  expectStaged(dir, entries);
});

test('with slow background writes (the worker far ahead of them) every staged byte is still the archive\'s', async () => {
  const entries = mixedEntries();
  const archive = zstdFile(buildTar(entries), 'ckpt.tar.zst');
  const spy = slowWrites(15);
  const { dir } = await stageCheckpointArchive(archive, bundle, recordingLogger());
  expect(spy).toHaveBeenCalled(); // the bulk bodies did go through the background writes
  spy.mockRestore();
  expectStaged(dir, entries);
});

test('two archives staged at once (two workers, interleaved writes) are both intact', async () => {
  const a = mixedEntries();
  const b = mixedEntries();
  const archiveA = zstdFile(buildTar(a), 'a.tar.zst');
  const archiveB = zstdFile(buildTar(b), 'b.tar.zst');
  const bundleB = path.join(tmp, 'bundle-b');
  fs.mkdirSync(bundleB);
  slowWrites(5);
  const [ra, rb] = await Promise.all([
    stageCheckpointArchive(archiveA, bundle, recordingLogger()),
    stageCheckpointArchive(archiveB, bundleB, recordingLogger()),
  ]);
  jest.restoreAllMocks();
  expectStaged(ra.dir, a);
  expectStaged(rb.dir, b);
});

test('a failed background write mid-archive: refused, the staging dir gone, no write left in flight', async () => {
  const entries = mixedEntries();
  const archive = zstdFile(buildTar(entries), 'ckpt.tar.zst');
  const realWrite = coreFs.write;
  let n = 0;
  let inFlight = 0;
  jest.spyOn(coreFs, 'write').mockImplementation(((...args: unknown[]) => {
    const cb = args[args.length - 1] as (err: NodeJS.ErrnoException | null, n?: number) => void;
    inFlight++;
    const done = (err: NodeJS.ErrnoException | null, written?: number): void => {
      inFlight--;
      cb(err, written);
    };
    if (++n === 9) {
      setTimeout(() => done(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })), 5);
      return;
    }
    setTimeout(() => {
      try {
        (realWrite as (...a: unknown[]) => void)(...args.slice(0, -1), done);
      } catch (err) {
        done(err as NodeJS.ErrnoException);
      }
    }, n % 4);
  }) as unknown as typeof fs.write);
  const err = await stageCheckpointArchive(archive, bundle, recordingLogger()).catch((e: unknown) => e);
  expect(inFlight).toBe(0);
  expect(String(err)).toMatch(/ENOSPC/);
  expect(n).toBeGreaterThanOrEqual(9);
  expect(fs.existsSync(path.join(bundle, 'ctrd-restore'))).toBe(false);
});

test('the worker decompresses into memory handed back, and never into memory still retained', async () => {
  const data = random(12 * MiB + 333);
  const archive = zstdFile(data, 'plain.zst');
  const fh = await fs.promises.open(archive, 'r');
  const zstd = zstdDecompressFileInWorker(fh.fd, ZSTD_WINDOW_LOG_MAX);
  const out: Buffer[] = [];
  const held: { chunk: Buffer; copy: Buffer; release: () => void }[] = [];
  const done: Buffer[] = [];
  try {
    for await (const chunk of zstd.stream) {
      out.push(Buffer.from(chunk));
      if (out.length % 3 === 1) {
        // Keep every third chunk past the reader's end of it, as a write in flight would.
        held.push({ chunk, copy: Buffer.from(chunk), release: zstd.chunks.retain(chunk.subarray(100, 200)) });
      } else {
        done.push(chunk);
      }
      zstd.chunks.readerDone(chunk);
    }
    expect(Buffer.concat(out).equals(data)).toBe(true);
    // Memory handed back was transferred to the worker: its views here are empty.
    expect(done.length).toBeGreaterThan(0);
    for (const chunk of done) expect(chunk.buffer.byteLength).toBe(0);
    // Retained memory stayed here, untouched while the worker decompressed the rest.
    for (const h of held) {
      expect(h.chunk.buffer.byteLength).toBeGreaterThan(0);
      expect(h.chunk.equals(h.copy)).toBe(true);
    }
    expect(zstd.chunks.outstanding).toBe(held.length);
    for (const h of held) h.release();
    expect(zstd.chunks.outstanding).toBe(0);
    for (const h of held) expect(h.chunk.buffer.byteLength).toBe(0);
  } finally {
    await zstd.close();
    await fh.close();
  }
});

describe('ChunkLeases', () => {
  const chunk = (n = 16): Buffer => Buffer.from(new ArrayBuffer(n));

  test('memory goes back only when the reader and every retainer are done, once', () => {
    const back: ArrayBuffer[] = [];
    const leases = new ChunkLeases((m) => back.push(m));
    const c = chunk();
    leases.lend(c);
    const r1 = leases.retain(c.subarray(2, 5));
    const r2 = leases.retain(c);
    leases.readerDone(c);
    r1();
    r1(); // a second call of the same release changes nothing
    expect(back).toEqual([]);
    r2();
    expect(back).toEqual([c.buffer]);
    leases.readerDone(c);
    expect(back).toHaveLength(1);
  });

  test('retaining memory that was never lent holds nothing; after close nothing goes back', () => {
    const back: ArrayBuffer[] = [];
    const leases = new ChunkLeases((m) => back.push(m));
    leases.retain(chunk())();
    const c = chunk();
    leases.lend(c);
    const r = leases.retain(c);
    leases.close();
    leases.readerDone(c);
    r();
    expect(back).toEqual([]);
  });

  test('a view into the middle of memory, or the same chunk twice, cannot be lent', () => {
    const leases = new ChunkLeases(() => undefined);
    const c = chunk();
    expect(() => leases.lend(c.subarray(1))).toThrow(/own its memory/);
    leases.lend(c);
    expect(() => leases.lend(c)).toThrow(/lent once/);
  });
});

test('readTarEntries reports a chunk done only after its last slice was handed out and the reader was called again', async () => {
  const entries = [file('a', random(3000)), file('b', random(70_000)), file('c', random(10)), file('d', random(5000))];
  const tar = buildTar(entries);
  // Chunks of odd sizes, each its own memory, so headers and bodies straddle them.
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < tar.length; i++) {
    const n = Math.min(tar.length - at, 700 + ((i * 9973) % 20_000));
    const own = Buffer.alloc(n); // never from Buffer's shared pool
    tar.copy(own, 0, at, at + n);
    chunks.push(own);
    at += n;
  }
  const reported = new Set<ArrayBuffer>();
  async function* input(): AsyncGenerator<Buffer> {
    yield* chunks;
  }
  const staged = new Map<string, Buffer>();
  for await (const entry of readTarEntries(input(), { onChunkDone: (c) => reported.add(c.buffer as ArrayBuffer) })) {
    const parts: Buffer[] = [];
    for await (const slice of entry.body()) {
      // The slice just handed out is never of a chunk already reported done.
      expect(reported.has(slice.buffer as ArrayBuffer)).toBe(false);
      parts.push(Buffer.from(slice));
    }
    staged.set(entry.header.name, Buffer.concat(parts));
  }
  for (const e of entries) expect(staged.get(e.name as string)?.equals(e.data as Buffer)).toBe(true);
  // Every chunk but those the reader still held at the end was reported.
  expect(reported.size).toBeGreaterThanOrEqual(chunks.length - 2);
});
