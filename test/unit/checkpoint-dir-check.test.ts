import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertOnlyRegularFilesAndDirs } from '../../src/format/checkpoint-dir-check';
import { InvalidArgumentError, NotFoundError } from '../../src/errors';

let tmp: string;
let dir: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-dircheck-'));
  dir = path.join(tmp, 'ckpt');
  fs.mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'inventory.img'), 'i');
  fs.writeFileSync(path.join(dir, 'sub', 'deeper', 'pages-1.img'), 'p');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;

test('a tree of regular files and directories passes', async () => {
  await expect(assertOnlyRegularFilesAndDirs(dir)).resolves.toBeUndefined();
});

test('the top directory must be a real directory, not a symlink to one', async () => {
  const link = path.join(tmp, 'link');
  fs.symlinkSync(dir, link);
  await expect(assertOnlyRegularFilesAndDirs(link)).rejects.toThrow(/is a symlink, not a directory/);
  await expect(assertOnlyRegularFilesAndDirs(path.join(dir, 'inventory.img'))).rejects.toThrow(/is a regular file, not a directory/);
  await expect(assertOnlyRegularFilesAndDirs(path.join(tmp, 'missing'))).rejects.toThrow(NotFoundError);
});

test.each([
  ['symlink', (p: string) => fs.symlinkSync('/etc/shadow', p), 'symlink'],
  ['dangling symlink', (p: string) => fs.symlinkSync('/nonexistent', p), 'symlink'],
  ['fifo', (p: string) => execFileSync('mkfifo', [p]), 'fifo'],
])('a nested %s is refused, naming its relative path and type', async (_label, make, type) => {
  make(path.join(dir, 'sub', 'deeper', 'bad.img'));
  const err = await assertOnlyRegularFilesAndDirs(dir).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toContain(`sub/deeper/bad.img is a ${type}`);
});

test('a unix socket is refused', async () => {
  const sock = path.join(dir, 'sock');
  const server = net.createServer().listen(sock);
  await new Promise((r) => server.once('listening', r));
  try {
    await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/sock is a socket/);
  } finally {
    server.close();
  }
});

(isRoot ? test : test.skip)('device nodes are refused (needs root to mknod)', async () => {
  execFileSync('mknod', [path.join(dir, 'null'), 'c', '1', '3']);
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/null is a character device/);
  fs.unlinkSync(path.join(dir, 'null'));
  execFileSync('mknod', [path.join(dir, 'blk'), 'b', '7', '200']);
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/blk is a block device/);
});

test('a symlinked subdirectory is refused, not walked into', async () => {
  fs.symlinkSync('/etc', path.join(dir, 'etc'));
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/: etc is a symlink/);
});

test('a hard-linked regular file is refused (it could be a host file)', async () => {
  const hostFile = path.join(tmp, 'host-secret');
  fs.writeFileSync(hostFile, 'secret');
  fs.linkSync(hostFile, path.join(dir, 'sub', 'spec.dump'));
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/sub\/spec\.dump is a regular file with 2 hard links/);
});

test('the first offender in sorted order is reported', async () => {
  fs.symlinkSync('/', path.join(dir, 'z-link'));
  execFileSync('mkfifo', [path.join(dir, 'a-fifo')]);
  await expect(assertOnlyRegularFilesAndDirs(dir)).rejects.toThrow(/: a-fifo is a fifo/);
});
