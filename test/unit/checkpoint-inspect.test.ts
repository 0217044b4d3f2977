import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpointSource } from '../../src/format/checkpoint-source';
import { inspectCheckpoint } from '../../src/format/checkpoint-inspect';
import { goRfc3339 } from '../../src/format/checkpoint-info';
import { writeFakeCheckpoint } from '../helpers/criu-images';

let tmp: string;
let stage: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-inspect-'));
  stage = path.join(tmp, 'stage');
  writeFakeCheckpoint(path.join(stage, 'checkpoint'));
  fs.writeFileSync(path.join(stage, 'config.dump'), JSON.stringify({ id: 'abc', name: 'c1', rootfsImageName: 'busybox', runtime: 'io.containerd.ferry.v2', createdTime: '2026-02-09T10:49:15.31334068Z', checkpointedTime: '2026-02-09T18:50:02.139182966+08:00' }));
  fs.writeFileSync(path.join(stage, 'spec.dump'), JSON.stringify({ annotations: { 'io.kubernetes.cri.container-name': 'web' }, mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }] }));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const all = { psTree: true, psTreeCmd: true, psTreeEnv: true, files: true, sockets: true, mounts: true, verify: true };

test.each([['plain', []], ['gzip', ['-z']], ['zstd', ['--zstd']]] as const)('a %s archive (with ./ names) is streamed and inspected like the directory', async (_kind, flag) => {
  const archive = path.join(tmp, 'a.tar');
  execFileSync('tar', ['-c', ...flag, '-f', archive, '-C', stage, '.']);
  const fromArchive = (await inspectCheckpoint(await openCheckpointSource(archive), all)).json;
  const fromDir = (await inspectCheckpoint(await openCheckpointSource(stage), all)).json;
  expect(fromArchive.verify).toEqual({ ok: true, problems: [] });
  delete fromArchive.verify;
  delete fromDir.verify;
  expect(fromArchive).toEqual(fromDir);
  expect(fromArchive).toMatchObject({ container_name: 'web', id: 'abc', image: 'busybox', created: '2026-02-09T10:49:15Z', checkpointed: '2026-02-09T18:50:02+08:00', engine: 'containerd' });
  expect(fromArchive.process_tree).toMatchObject({ pid: 1, command: 'sh', cmdline: 'sh -c main ', environment_variables: { PATH: '/bin', FERRY_TEST_VAR: 'hello' } });
  expect(fromArchive.process_tree!.children!.map((c) => c.cmdline)).toEqual(['sleep 1000 ', 'nc -l -p 8080 ']);
  expect(fromArchive.file_descriptors![0].open_files).toContainEqual({ type: 'REG', fd: 'REG 3', path: '/tmp/open-file' });
  expect(fromArchive.mounts).toEqual([{ destination: '/proc', type: 'proc', source: 'proc' }]);
});

test('a truncated pages image in an archive: --verify names it; reading the command line is an error naming it, not a read past the end', async () => {
  fs.truncateSync(path.join(stage, 'checkpoint', 'pages-200.img'), 10);
  const archive = path.join(tmp, 'a.tar');
  execFileSync('tar', ['-cf', archive, '-C', stage, '.']);
  const src = await openCheckpointSource(archive);
  const r = await inspectCheckpoint(src, { verify: true });
  expect(r.json.verify?.problems).toEqual([`${archive}:checkpoint/pages-200.img: is 10 bytes, but pagemap-1.img says 12288 bytes (3 pages of 4096 bytes): truncated`]);
  await expect(inspectCheckpoint(src, { psTree: true, psTreeCmd: true })).rejects.toThrow(`${archive}:checkpoint/pages-200.img: pages 0..11 lie beyond the file's 10 bytes`);
});

test('an archive without checkpoint/ is refused; a flat CRIU tar is a CRIU image source', async () => {
  const bad = path.join(tmp, 'bad.tar');
  execFileSync('tar', ['-cf', bad, '-C', stage, 'config.dump']);
  await expect(openCheckpointSource(bad)).rejects.toThrow(/has no checkpoint\/ directory of CRIU images/);
  const flat = path.join(tmp, 'criu.tar');
  execFileSync('tar', ['-cf', flat, '-C', path.join(stage, 'checkpoint'), '.']);
  const src = await openCheckpointSource(flat);
  expect(src.kind).toBe('criu-images');
  expect((await inspectCheckpoint(src, { psTree: true })).json.process_tree?.command).toBe('sh');
});

test('an archive entry pointing outside is refused; a symlink entry is skipped, not read', async () => {
  fs.symlinkSync('/etc/passwd', path.join(stage, 'checkpoint', 'evil.img'));
  const archive = path.join(tmp, 'a.tar');
  execFileSync('tar', ['-cf', archive, '-C', stage, '.']);
  const src = await openCheckpointSource(archive);
  expect(src.skipped).toEqual(['checkpoint/evil.img (symlink)']);
  await expect(src.images.size('evil.img')).resolves.toBeUndefined();
  const out = path.join(tmp, 'out.tar');
  execFileSync('tar', ['-cf', out, '-C', stage, '--transform', 's,^,../,', 'config.dump']);
  await expect(openCheckpointSource(out)).rejects.toThrow(/points outside the archive/);
});

test('goRfc3339 prints as Go does: seconds, the offset kept, +00:00 as Z, zero time for garbage', () => {
  expect(goRfc3339('2026-02-09T18:50:02.139182966+08:00')).toBe('2026-02-09T18:50:02+08:00');
  expect(goRfc3339('2026-02-09T18:50:02+00:00')).toBe('2026-02-09T18:50:02Z');
  expect(goRfc3339('nope')).toBe('0001-01-01T00:00:00Z');
});
