// stageCheckpointArchive / removeStagingDir / isArchiveFile beyond the corpus: what is already
// at <bundle>/ctrd-restore, the archive path itself, limits, and real GNU tar output.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  isArchiveFile, removeStagingDir, stageCheckpointArchive, STAGING_DIR_NAME,
} from '../../src/format/archive-staging';
import { InvalidArgumentError, NotFoundError } from '../../src/errors';
import { recordingLogger, snapshotTree } from '../corpus/fs-snapshot';
import { buildTar, file, symlink } from '../corpus/tar-writer';

let tmp: string;
let host: string;
let bundle: string;
let outside: string;
const staging = (): string => path.join(bundle, STAGING_DIR_NAME);

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-stage-'));
  host = path.join(tmp, 'host');
  bundle = path.join(host, 'bundle');
  outside = path.join(host, 'outside');
  fs.mkdirSync(bundle, { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'keep.txt'), 'keep');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeArchive(bytes: Buffer, name = 'ckpt.tar'): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}

const simple = (): string => writeArchive(buildTar([file('inventory.img', 'inv'), file('sub/pages-1.img', 'pages')]));

test('a pre-planted symlink at ctrd-restore is removed, never followed', async () => {
  fs.symlinkSync(outside, staging());
  const before = snapshotTree(outside);
  const result = await stageCheckpointArchive(simple(), bundle, recordingLogger());
  expect(fs.lstatSync(staging()).isDirectory()).toBe(true);
  expect(fs.readFileSync(path.join(result.dir, 'inventory.img'), 'utf8')).toBe('inv');
  expect(snapshotTree(outside)).toEqual(before);
});

test('a pre-existing directory (with a symlink out inside it) is replaced, its target untouched', async () => {
  fs.mkdirSync(path.join(staging(), 'old'), { recursive: true });
  fs.writeFileSync(path.join(staging(), 'old', 'stale.img'), 'stale');
  fs.symlinkSync(outside, path.join(staging(), 'escape'));
  const result = await stageCheckpointArchive(simple(), bundle, recordingLogger());
  expect(fs.readdirSync(result.dir).sort()).toEqual(['inventory.img', 'sub']);
  expect(fs.readFileSync(path.join(outside, 'keep.txt'), 'utf8')).toBe('keep');
});

test('removeStagingDir: symlink at the top or inside is unlinked, target kept; missing is fine', async () => {
  fs.symlinkSync(outside, staging());
  await removeStagingDir(bundle);
  expect(fs.existsSync(staging())).toBe(false);
  expect(fs.readdirSync(outside)).toEqual(['keep.txt']);

  fs.mkdirSync(staging());
  fs.symlinkSync(outside, path.join(staging(), 'in'));
  fs.symlinkSync(path.join(outside, 'keep.txt'), path.join(staging(), 'f'));
  await removeStagingDir(bundle);
  expect(fs.existsSync(staging())).toBe(false);
  expect(fs.readFileSync(path.join(outside, 'keep.txt'), 'utf8')).toBe('keep');

  await expect(removeStagingDir(bundle)).resolves.toBeUndefined();
});

test('the staging dir is 0700 and file modes do not depend on the umask', async () => {
  const old = process.umask(0o077);
  try {
    const archive = writeArchive(buildTar([file('x', 'x', 0o755), file('y', 'y', 0o644)]));
    const { dir } = await stageCheckpointArchive(archive, bundle, recordingLogger());
    expect(fs.statSync(dir).mode & 0o7777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'x')).mode & 0o7777).toBe(0o755);
    expect(fs.statSync(path.join(dir, 'y')).mode & 0o7777).toBe(0o644);
  } finally {
    process.umask(old);
  }
});

test('a failure after some files were written leaves no staging dir', async () => {
  const archive = writeArchive(buildTar([file('a', 'a'), file('b/c', 'c'), file('../x', 'x')]));
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger())).rejects.toThrow(InvalidArgumentError);
  expect(fs.existsSync(staging())).toBe(false);
  expect(fs.existsSync(path.join(bundle, 'x'))).toBe(false);
});

test('maxTotalBytes and maxEntries refuse oversized archives', async () => {
  const archive = writeArchive(buildTar([file('a', Buffer.alloc(600)), file('b', Buffer.alloc(600))]));
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger(), { maxTotalBytes: 1000 }))
    .rejects.toThrow(/entry "b" refused: unpacked size would exceed the limit of 1000 bytes/);
  expect(fs.existsSync(staging())).toBe(false);
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger(), { maxEntries: 1 }))
    .rejects.toThrow(/more than 1 entries/);
  await expect(stageCheckpointArchive(archive, bundle, recordingLogger(), { maxTotalBytes: 1200, maxEntries: 2 }))
    .resolves.toMatchObject({ skipped: [] });
});

test('the archive path itself: symlink and FIFO are refused (without blocking), missing is NotFound', async () => {
  const real = simple();
  const link = path.join(tmp, 'link.tar');
  fs.symlinkSync(real, link);
  await expect(stageCheckpointArchive(link, bundle, recordingLogger())).rejects.toThrow(/is a symlink; refusing to follow it/);
  const fifo = path.join(tmp, 'fifo.tar');
  execFileSync('mkfifo', [fifo]);
  await expect(stageCheckpointArchive(fifo, bundle, recordingLogger())).rejects.toThrow(/is a fifo, not a regular file/);
  await expect(stageCheckpointArchive(path.join(tmp, 'nope.tar'), bundle, recordingLogger())).rejects.toThrow(NotFoundError);
  expect(fs.existsSync(staging())).toBe(false);
});

test('isArchiveFile: file → true, directory → false, symlink/fifo → error, missing → NotFound', async () => {
  expect(await isArchiveFile(simple())).toBe(true);
  expect(await isArchiveFile(outside)).toBe(false);
  const link = path.join(tmp, 'l');
  fs.symlinkSync(outside, link);
  await expect(isArchiveFile(link)).rejects.toThrow(/is a symlink, expected a directory or an archive file/);
  const fifo = path.join(tmp, 'f');
  execFileSync('mkfifo', [fifo]);
  await expect(isArchiveFile(fifo)).rejects.toThrow(/is a fifo/);
  await expect(isArchiveFile(path.join(tmp, 'missing'))).rejects.toThrow(NotFoundError);
});

test.each([['tar', []], ['tar+gzip', ['--gzip']], ['tar+zstd', ['--zstd']]])(
  'a real GNU %s archive of a checkpoint dir is staged byte for byte, symlinks skipped with a warning',
  async (_label, flags) => {
    const src = path.join(tmp, 'src');
    fs.mkdirSync(path.join(src, 'deep', 'er'), { recursive: true });
    fs.writeFileSync(path.join(src, 'pages-1.img'), Buffer.alloc(3 << 20, 0x5a));
    fs.writeFileSync(path.join(src, 'deep', 'er', 'core-1.img'), 'core');
    fs.symlinkSync('/etc/shadow', path.join(src, 'shadow.img'));
    const archive = path.join(tmp, 'real.tar');
    execFileSync('tar', ['-C', src, ...(flags as string[]), '-cf', archive, '.']);
    const log = recordingLogger();
    const { dir, skipped } = await stageCheckpointArchive(archive, bundle, log);
    expect(fs.readFileSync(path.join(dir, "pages-1.img")).equals(Buffer.alloc(3 << 20, 0x5a))).toBe(true); // .equals: jest deep-equal of MiBs is slow
    expect(fs.readFileSync(path.join(dir, 'deep', 'er', 'core-1.img'), 'utf8')).toBe('core');
    expect(fs.existsSync(path.join(dir, 'shadow.img'))).toBe(false);
    expect(skipped).toEqual([{ name: './shadow.img', type: 'symlink', reason: expect.any(String) }]);
    expect(log.warnings[0].msg).toContain('./shadow.img');
  },
);

test('restaging replaces an earlier staging completely', async () => {
  await stageCheckpointArchive(writeArchive(buildTar([file('first', '1')]), 'a.tar'), bundle, recordingLogger());
  const { dir } = await stageCheckpointArchive(writeArchive(buildTar([file('second', '2'), symlink('s', '/')]), 'b.tar'), bundle, recordingLogger());
  expect(fs.readdirSync(dir)).toEqual(['second']);
});
