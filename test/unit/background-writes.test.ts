// BackgroundWrites (staging of compressed archives): chunks land in file order while several
// writes are in flight, the in-flight bytes stay bounded, and a failed write is reported (and
// waited for) instead of being lost.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackgroundWrites } from '../../src/format/background-writes';

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bgw-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('chunks of many sizes land in order, at most maxPendingBytes in flight', async () => {
  const file = path.join(tmp, 'out');
  const fd = fs.openSync(file, 'wx');
  const chunks: Buffer[] = [];
  for (let i = 0; i < 40; i++) chunks.push(Buffer.alloc(1 + ((i * 7919) % 300_000), i));
  const writes = new BackgroundWrites(fd, 512 * 1024);
  let maxPending = 0;
  try {
    for (const c of chunks) {
      await writes.write(c);
      maxPending = Math.max(maxPending, (writes as unknown as { pendingBytes: number }).pendingBytes);
    }
    await writes.flush();
  } finally {
    await writes.settle();
    fs.closeSync(fd);
  }
  expect(maxPending).toBeLessThanOrEqual(512 * 1024);
  expect(maxPending).toBeGreaterThan(0);
  expect(fs.readFileSync(file).equals(Buffer.concat(chunks))).toBe(true);
});

test('a chunk larger than the bound is still written (alone)', async () => {
  const file = path.join(tmp, 'out');
  const fd = fs.openSync(file, 'wx');
  const writes = new BackgroundWrites(fd, 1024);
  const big = Buffer.alloc(1 << 20, 7);
  await writes.write(Buffer.from('head'));
  await writes.write(big);
  await writes.flush();
  fs.closeSync(fd);
  expect(fs.readFileSync(file).equals(Buffer.concat([Buffer.from('head'), big]))).toBe(true);
});

test('a failed write surfaces from the next write or from flush, after every write settled', async () => {
  const file = path.join(tmp, 'ro');
  fs.writeFileSync(file, '');
  const fd = fs.openSync(file, 'r'); // writes fail with EBADF
  const writes = new BackgroundWrites(fd, 1 << 20);
  let caught: unknown;
  try {
    await writes.write(Buffer.alloc(100));
    await writes.write(Buffer.alloc(100));
    await writes.flush();
  } catch (err) {
    caught = err;
  } finally {
    await writes.settle();
    fs.closeSync(fd);
  }
  expect((caught as NodeJS.ErrnoException).code).toBe('EBADF');
});
