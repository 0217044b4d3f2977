// stageCheckpointArchive of a tar+zstd archive file of 8 MiB and more: decompressed on a worker
// thread (zstd-file-worker.ts). The staged tree must equal the plain archive's, content errors
// must read as on the main-thread path, and the worker must be gone after success and failure
// (jest would report the open handle, and the test process would not exit).

import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stageCheckpointArchive, STAGING_DIR_NAME } from '../../src/format/archive-staging';
import { InvalidArgumentError } from '../../src/errors';
import { recordingLogger } from '../corpus/fs-snapshot';
import { buildTar, file } from '../corpus/tar-writer';

let tmp: string;
let bundle: string;
const staging = (): string => path.join(bundle, STAGING_DIR_NAME);
const MiB = 1 << 20;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-stage-zstdw-'));
  bundle = path.join(tmp, 'bundle');
  fs.mkdirSync(bundle);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const random = (n: number): Buffer => randomFillSync(Buffer.allocUnsafe(n));

/** A tar of `entries`, compressed by the zstd tool (as `tar --zstd` would), into tmp/NAME. */
function zstdArchive(tar: Buffer, name = 'ckpt.tar.zst'): string {
  const plain = path.join(tmp, `${name}.plain`);
  fs.writeFileSync(plain, tar);
  const out = path.join(tmp, name);
  execFileSync('zstd', ['-q', '-1', '-f', '-o', out, plain]);
  return out;
}

test('a 10 MiB tar+zstd archive is staged byte for byte through the worker, with onRead up to its size', async () => {
  const pages = random(10 * MiB + 5);
  const small = Array.from({ length: 50 }, (_, i) => file(`checkpoint/fdinfo-${i}.img`, random(2000 + i)));
  const tar = buildTar([...small, file('checkpoint/pages-1.img', pages, 0o600)]);
  const archive = zstdArchive(tar);
  expect(fs.statSync(archive).size).toBeGreaterThanOrEqual(8 * MiB); // the worker path
  const seen: number[] = [];
  const { dir } = await stageCheckpointArchive(archive, bundle, recordingLogger(), { onRead: (n) => seen.push(n) });
  expect(fs.readFileSync(path.join(dir, 'checkpoint/pages-1.img')).equals(pages)).toBe(true);
  expect(fs.statSync(path.join(dir, 'checkpoint/pages-1.img')).mode & 0o7777).toBe(0o600);
  for (const [i, e] of small.entries()) expect(fs.readFileSync(path.join(dir, `checkpoint/fdinfo-${i}.img`)).equals(e.data as Buffer)).toBe(true);
  expect(seen[seen.length - 1]).toBe(fs.statSync(archive).size);
});

test('a tar+zstd archive cut short: "zstd: Stream ended in middle of compressed data frame", no staging dir', async () => {
  const archive = zstdArchive(buildTar([file('pages-1.img', random(12 * MiB))]));
  fs.truncateSync(archive, fs.statSync(archive).size - MiB);
  const err = await stageCheckpointArchive(archive, bundle, recordingLogger()).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toMatch(/zstd: Stream ended in middle of compressed data frame|truncated archive/);
  expect(fs.existsSync(staging())).toBe(false);
});

test('corrupt zstd data in a large archive is a content error; the worker is stopped and the dir removed', async () => {
  const archive = zstdArchive(buildTar([file('pages-1.img', random(12 * MiB))]));
  const fd = fs.openSync(archive, 'r+');
  fs.writeSync(fd, Buffer.alloc(64 * 1024, 0xa5), 0, 64 * 1024, 4 * MiB); // garbage mid-frame
  fs.closeSync(fd);
  const err = await stageCheckpointArchive(archive, bundle, recordingLogger()).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toMatch(/^checkpoint archive .*: zstd: /);
  expect(fs.existsSync(staging())).toBe(false);
});

test('a hostile entry early in a large archive stops the worker mid-stream (it is waiting on its chunk limit)', async () => {
  const archive = zstdArchive(buildTar([file('a.img', random(MiB)), file('../escape', 'x'), file('big.img', random(20 * MiB))]));
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger())).rejects.toThrow(/"\.\." component/);
  expect(fs.existsSync(staging())).toBe(false);
  expect(fs.existsSync(path.join(tmp, 'escape'))).toBe(false);
});

test('trailing data after the end-of-archive marker: staged, the worker stopped without reading on', async () => {
  const tar = Buffer.concat([buildTar([file('pages-1.img', random(9 * MiB))]), random(4 * MiB)]);
  const { dir } = await stageCheckpointArchive(zstdArchive(tar), bundle, recordingLogger());
  expect(fs.readdirSync(dir)).toEqual(['pages-1.img']);
});
