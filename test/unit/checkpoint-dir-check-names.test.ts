// Names in an unpacked checkpoint directory are bytes, not text. Reading them as UTF-8 strings
// (fs.readdir's default) maps every invalid sequence to U+FFFD, so `a\xff` (a symlink) and the
// real name `a\u{fffd}` (a regular file) become one string: lstat then checks the regular file
// twice and the symlink never. Found by the e2e corpus (containerd unpacks such a name as is).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertOnlyRegularFilesAndDirs } from '../../src/format/checkpoint-dir-check';
import { InvalidArgumentError } from '../../src/errors';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-dircheck-names-'));
  fs.writeFileSync(path.join(dir, 'inventory.img'), 'i');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const bytesPath = (...parts: (string | Buffer)[]): Buffer =>
  Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [Buffer.from('/'), Buffer.from(p)])));

test('a symlink whose name is not UTF-8 cannot hide behind a regular file with the lossy-decoded name', async () => {
  fs.symlinkSync('/etc/shadow', bytesPath(dir, Buffer.from([0x61, 0xff])));
  fs.writeFileSync(path.join(dir, 'a\u{fffd}'), 'decoy');
  const err = await assertOnlyRegularFilesAndDirs(dir).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toMatch(/name "a\\xff" is not valid UTF-8/);
});

test('a directory whose name is not UTF-8 is refused (its content could not be walked reliably)', async () => {
  const evil = bytesPath(dir, Buffer.from([0x64, 0xc3]));
  fs.mkdirSync(evil);
  fs.symlinkSync('/', bytesPath(dir, Buffer.from([0x64, 0xc3]), 'root'));
  fs.mkdirSync(path.join(dir, 'd\u{fffd}'));
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/name "d\\xc3" is not valid UTF-8/);
});

test('a regular file with a non-UTF-8 name is refused with a clear message, not a misleading ENOENT', async () => {
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(bytesPath(dir, 'sub', Buffer.from([0x61, 0xff, 0xfe])), 'x');
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/sub\/a\\xff\\xfe.*not valid UTF-8|name "sub\/a\\xff\\xfe" is not valid UTF-8/);
});

test('valid UTF-8 names beyond ASCII pass', async () => {
  fs.writeFileSync(path.join(dir, 'pagés-1.img'), 'p');
  fs.mkdirSync(path.join(dir, '目录'));
  fs.writeFileSync(path.join(dir, '目录', 'x.img'), 'x');
  await expect(assertOnlyRegularFilesAndDirs(dir)).resolves.toBeUndefined();
});
