// stageCheckpointArchive's in-kernel path: in an uncompressed archive read from a file, bodies
// of 256 KiB and more are copied from the archive's fd by native createFileFrom (several in
// flight), never read into JavaScript. The same policy must hold there as on the streamed path:
// truncation, conflicts, limits, modes, cleanup, nothing written outside — and the staged tree
// must be the same as the streamed path's (the same archive, gzip-compressed).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { stageCheckpointArchive, STAGING_DIR_NAME } from '../../src/format/archive-staging';
import { InvalidArgumentError } from '../../src/errors';
import { recordingLogger, snapshotTree } from '../corpus/fs-snapshot';
import { buildTar, dir, file } from '../corpus/tar-writer';

let tmp: string;
let bundle: string;
const staging = (): string => path.join(bundle, STAGING_DIR_NAME);

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-stage-kcopy-'));
  bundle = path.join(tmp, 'bundle');
  fs.mkdirSync(bundle);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `n` bytes that differ at every offset modulo 251, seeded so two bodies never match. */
function bulk(n: number, seed: number): Buffer {
  const pattern = Buffer.alloc(251);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i + seed * 31) % 251;
  return Buffer.alloc(n, pattern);
}

function writeArchive(bytes: Buffer, name = 'ckpt.tar'): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}

const KiB = 1024;

test('bulk and small bodies, interleaved, more than fit in flight: same tree as the streamed (gzip) path', async () => {
  const entries = [dir('checkpoint', 0o700)];
  for (let i = 0; i < 7; i++) {
    entries.push(file(`checkpoint/pages-${i}.img`, bulk(256 * KiB + i * 4099, i), i % 2 ? 0o600 : 0o755));
    entries.push(file(`checkpoint/core-${i}.img`, bulk(100 + i, 100 + i)));
  }
  entries.push(file('deep/er/pages-9.img', bulk(3 * 1024 * KiB + 1, 9), 0o4755)); // setuid stripped
  const tar = buildTar(entries);
  const plain = await stageCheckpointArchive(writeArchive(tar), bundle, recordingLogger());
  // mtimes are the staging's own (the archive's are not restored): compare the rest.
  const tree = (root: string) => new Map([...snapshotTree(root)].map(([k, { mtimeMs: _m, ...rest }]) => [k, rest]));
  const viaKernel = tree(plain.dir);

  const other = path.join(tmp, 'other');
  fs.mkdirSync(other);
  const streamed = await stageCheckpointArchive(writeArchive(zlib.gzipSync(tar), 'ckpt.tar.gz'), other, recordingLogger());
  expect(viaKernel.size).toBe(18); // checkpoint/ + 14 files, deep/, deep/er/, pages-9.img
  expect(viaKernel).toEqual(tree(streamed.dir));
  expect(fs.readFileSync(path.join(plain.dir, 'deep/er/pages-9.img')).equals(bulk(3 * 1024 * KiB + 1, 9))).toBe(true);
  expect(fs.statSync(path.join(plain.dir, 'deep/er/pages-9.img')).mode & 0o7777).toBe(0o755);
  expect(fs.statSync(path.join(plain.dir, 'checkpoint/pages-1.img')).mode & 0o7777).toBe(0o600);
});

test('a bulk body cut short by the end of the archive is refused as truncated; no staging dir is left', async () => {
  const whole = buildTar([file('core.img', 'core'), file('pages-1.img', bulk(1024 * KiB, 1))], { end: false });
  const archive = writeArchive(whole.subarray(0, whole.length - 300 * KiB));
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger()))
    .rejects.toThrow(/truncated archive: body of "pages-1.img" \(1048576 bytes declared\)/);
  expect(fs.existsSync(staging())).toBe(false);
});

test('a bulk body after earlier bulk copies are in flight, truncated: refused, all copies waited for, dir removed', async () => {
  const entries = [];
  for (let i = 0; i < 6; i++) entries.push(file(`pages-${i}.img`, bulk(512 * KiB, i)));
  entries.push(file('last.img', bulk(2048 * KiB, 7)));
  const whole = buildTar(entries, { end: false });
  const archive = writeArchive(whole.subarray(0, whole.length - 1024 * KiB));
  const err = await stageCheckpointArchive(archive, bundle, recordingLogger()).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toMatch(/truncated archive: body of "last.img"/);
  expect(fs.existsSync(staging())).toBe(false);
});

test('a bulk file where an earlier entry made a directory: the kernel copy is refused (O_EXCL), dir removed', async () => {
  // `d` is not a duplicate name (only `d/x` was seen) but d/ exists as x's parent.
  const archive = writeArchive(buildTar([file('d/x', 'x'), file('d', bulk(300 * KiB, 1)), file('z', 'z')]));
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger()))
    .rejects.toThrow(/entry "d" refused: conflicts with an earlier entry/);
  expect(fs.existsSync(staging())).toBe(false);
});

test('duplicate bulk entries and escaping bulk names are refused before any copy starts', async () => {
  const dup = writeArchive(buildTar([file('p.img', bulk(300 * KiB, 1)), file('./p.img', bulk(300 * KiB, 2))]), 'dup.tar');
  await expect(stageCheckpointArchive(dup, bundle, recordingLogger())).rejects.toThrow(/duplicate entry/);
  expect(fs.existsSync(staging())).toBe(false);
  const escape = writeArchive(buildTar([file('../p.img', bulk(300 * KiB, 1))]), 'escape.tar');
  await expect(stageCheckpointArchive(escape, bundle, recordingLogger())).rejects.toThrow(/"\.\." component/);
  expect(fs.existsSync(path.join(tmp, 'p.img'))).toBe(false);
});

test('maxTotalBytes counts bulk bodies before they are copied', async () => {
  const archive = writeArchive(buildTar([file('a.img', bulk(300 * KiB, 1)), file('b.img', bulk(300 * KiB, 2))]));
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger(), { maxTotalBytes: 500 * KiB }))
    .rejects.toThrow(/entry "b.img" refused: unpacked size would exceed/);
  expect(fs.existsSync(staging())).toBe(false);
});

test('onRead rises monotonically to the end of the last body, never beyond the archive', async () => {
  const tar = buildTar([file('a.img', bulk(700 * KiB, 1)), file('s', 's'), file('b.img', bulk(900 * KiB, 2))]);
  const seen: number[] = [];
  await stageCheckpointArchive(writeArchive(tar), bundle, recordingLogger(), { onRead: (n) => seen.push(n) });
  expect(seen.length).toBeGreaterThan(1);
  for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]);
  // The last body ends 1024 bytes of padding-free end marker before the archive's end.
  expect(seen[seen.length - 1]).toBe(tar.length - 1024);
});

test('a real GNU tar archive staged across filesystems (tmpfs bundle): sendfile path, byte for byte', async () => {
  const shm = fs.mkdtempSync('/dev/shm/ferry-stage-kcopy-');
  try {
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'pages-1.img'), bulk(5 * 1024 * KiB + 17, 3));
    fs.writeFileSync(path.join(src, 'pstree.img'), 'pstree');
    const archive = path.join(tmp, 'real.tar');
    execFileSync('tar', ['-C', src, '-cf', archive, '.']);
    const { dir: staged } = await stageCheckpointArchive(archive, shm, recordingLogger());
    expect(fs.readFileSync(path.join(staged, 'pages-1.img')).equals(bulk(5 * 1024 * KiB + 17, 3))).toBe(true);
    expect(fs.readFileSync(path.join(staged, 'pstree.img'), 'utf8')).toBe('pstree');
  } finally {
    fs.rmSync(shm, { recursive: true, force: true });
  }
});
