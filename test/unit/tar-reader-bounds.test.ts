// Bounds of the tar reader on hostile or huge input: a few KiB of zstd or gzip that expand to
// hundreds of MiB are decompressed with bounded memory (a Transform buffers all the output of
// one input chunk at once, so input goes in slices sized from the ratio seen); with an input
// that can skip, large bodies are skipped without being read, and the body offsets reported are
// where the bytes lie.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openArchiveStream, readTarEntries, type SkippableIterator } from '../../src/format/tar-reader';

let tmp: string;
const BOMB = 256 * 1024 * 1024;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-tar-bounds-'));
  const src = path.join(tmp, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'a.img'), 'first');
  // A sparse file of zeros: tar reads it fast, zstd and gzip shrink it to a few KiB or MiB.
  fs.closeSync(fs.openSync(path.join(src, 'zeros.img'), 'w'));
  fs.truncateSync(path.join(src, 'zeros.img'), BOMB);
  fs.writeFileSync(path.join(src, 'z.img'), 'last');
  execFileSync('tar', ['--zstd', '-cf', path.join(tmp, 'bomb.tar.zst'), '-C', src, 'a.img', 'zeros.img', 'z.img']);
  execFileSync('tar', ['-czf', path.join(tmp, 'bomb.tar.gz'), '-C', src, 'a.img', 'zeros.img', 'z.img']);
  execFileSync('tar', ['-cf', path.join(tmp, 'plain.tar'), '-C', src, 'a.img', 'zeros.img', 'z.img']);
}, 120000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.each(['bomb.tar.zst', 'bomb.tar.gz'])('%s (256 MiB of zeros) is listed with bounded memory', async (name) => {
  const file = path.join(tmp, name);
  expect(fs.statSync(file).size).toBeLessThan(BOMB / 200);
  global.gc?.();
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  const { stream } = await openArchiveStream(fs.createReadStream(file, { highWaterMark: 1 << 20 }));
  const seen: [string, number][] = [];
  for await (const e of readTarEntries(stream)) {
    seen.push([e.header.name, e.header.size]);
    if (e.header.name === 'zeros.img') {
      for await (const _chunk of e.body()) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
  }
  expect(seen).toEqual([['a.img', 5], ['zeros.img', BOMB], ['z.img', 4]]);
  // Unsliced, the whole 256 MiB came out of one input chunk at once.
  expect(peak - before).toBeLessThan(96 * 1024 * 1024);
}, 120000);

/** A file read through skip-aware chunks, counting the bytes really read. */
function skippable(file: string): { it: SkippableIterator; read: () => number } {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  let pos = 0;
  let read = 0;
  return {
    read: () => read,
    it: {
      async next() {
        if (pos >= size) { fs.closeSync(fd); return { done: true, value: undefined }; }
        const buf = Buffer.alloc(Math.min(65536, size - pos));
        const n = fs.readSync(fd, buf, 0, buf.length, pos);
        pos += n;
        read += n;
        return { done: false, value: buf.subarray(0, n) };
      },
      skip(n: number) {
        if (pos + n > size) return false;
        pos += n;
        return true;
      },
    },
  };
}

test('with an input that can skip, a large body is skipped unread, and body offsets are where the bytes are', async () => {
  const file = path.join(tmp, 'plain.tar');
  const whole = fs.readFileSync(file);
  const s = skippable(file);
  const got: [string, string][] = [];
  for await (const e of readTarEntries(s.it)) {
    if (e.header.size < 100) {
      const parts: Buffer[] = [];
      for await (const c of e.body()) parts.push(c);
      got.push([e.header.name, Buffer.concat(parts).toString()]);
      expect(whole.subarray(e.dataOffset, e.dataOffset + e.header.size).toString()).toBe(got[got.length - 1][1]);
    } else {
      expect(whole.subarray(e.dataOffset - 512, e.dataOffset - 512 + 9).toString()).toBe('zeros.img');
    }
  }
  expect(got).toEqual([['a.img', 'first'], ['z.img', 'last']]);
  expect(s.read()).toBeLessThan(1024 * 1024);
});

test('a skip that would pass the end of the input is refused, and the truncation is reported', async () => {
  const whole = fs.readFileSync(path.join(tmp, 'plain.tar'));
  const cut = path.join(tmp, 'cut.tar');
  fs.writeFileSync(cut, whole.subarray(0, 4096));
  const s = skippable(cut);
  await expect((async () => { for await (const _e of readTarEntries(s.it)) { /* list */ } })()).rejects.toThrow(/truncated archive: body of "zeros.img"/);
});
