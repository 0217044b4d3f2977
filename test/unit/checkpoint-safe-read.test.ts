import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCheckpointFile, readCheckpointJson } from '../../src/format/safe-read';
import { InvalidArgumentError, NotFoundError } from '../../src/errors';

let tmp: string;
let dir: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-saferead-'));
  dir = path.join(tmp, 'ckpt');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'spec.dump'), '{"annotations":{"a":"b"}}');
  fs.writeFileSync(path.join(dir, 'sub', 'container.log'), 'log line\n');
  fs.writeFileSync(path.join(tmp, 'secret'), 'root:$6$hash:19000:0:99999:7:::');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('reads a regular file, also in a subdirectory', async () => {
  expect((await readCheckpointFile(dir, 'sub/container.log')).toString()).toBe('log line\n');
  expect(await readCheckpointJson(dir, 'spec.dump')).toEqual({ annotations: { a: 'b' } });
});

test('a symlink in place of the file is refused, never followed', async () => {
  fs.symlinkSync(path.join(tmp, 'secret'), path.join(dir, 'config.dump'));
  const err = await readCheckpointFile(dir, 'config.dump').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toMatch(/config\.dump in .* is a symlink, not a regular file/);
  expect((err as Error).message).not.toContain('root:');
});

test('a symlinked parent directory is refused', async () => {
  fs.symlinkSync(tmp, path.join(dir, 'up'));
  await expect(readCheckpointFile(dir, 'up/secret')).rejects.toThrow(/up is a symlink, not a directory/);
});

test('a FIFO in place of the file is refused without blocking', async () => {
  execFileSync('mkfifo', [path.join(dir, 'spec.fifo')]);
  await expect(readCheckpointFile(dir, 'spec.fifo')).rejects.toThrow(/is a fifo, not a regular file/);
});

test('missing file (or missing parent) is NotFound', async () => {
  await expect(readCheckpointFile(dir, 'nope.dump')).rejects.toThrow(NotFoundError);
  await expect(readCheckpointFile(dir, 'nosub/x')).rejects.toThrow(NotFoundError);
  await expect(readCheckpointFile(path.join(tmp, 'nodir'), 'x')).rejects.toThrow(NotFoundError);
});

test.each(['../secret', '/etc/passwd', 'sub/../../secret', '', './spec.dump', 'sub//container.log', 'a\0b', 'sub/'])(
  'name %j is refused before touching the filesystem',
  async (name) => {
    await expect(readCheckpointFile(dir, name)).rejects.toThrow(InvalidArgumentError);
  },
);

test('the checkpoint dir itself must not be a symlink', async () => {
  const link = path.join(tmp, 'link');
  fs.symlinkSync(dir, link);
  await expect(readCheckpointFile(link, 'spec.dump')).rejects.toThrow(/is a symlink, not a directory/);
});

test('a hard link to a host file is refused', async () => {
  fs.linkSync(path.join(tmp, 'secret'), path.join(dir, 'config.dump'));
  await expect(readCheckpointFile(dir, 'config.dump')).rejects.toThrow(/has 2 hard links/);
});

test('maxBytes is enforced', async () => {
  fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(1001));
  await expect(readCheckpointFile(dir, 'big', { maxBytes: 1000 })).rejects.toThrow(/1001 bytes, over the 1000-byte limit/);
  expect((await readCheckpointFile(dir, 'big', { maxBytes: 1001 })).length).toBe(1001);
  fs.writeFileSync(path.join(dir, 'empty'), '');
  expect((await readCheckpointFile(dir, 'empty')).length).toBe(0);
});

test('invalid JSON is reported without echoing the content', async () => {
  fs.writeFileSync(path.join(dir, 'config.dump'), 'root:$6$hash:19000');
  const err = await readCheckpointJson(dir, 'config.dump').catch((e: unknown) => e);
  expect((err as Error).message).toMatch(/config\.dump in .* is not valid JSON/);
  expect((err as Error).message).not.toContain('root');
});
