// An uncompressed archive with random access (a file; an uncompressed layer in containerd's
// content store) is indexed from its headers and small files only — pages images are skipped
// over, not read — and ranges of it are read where they lie; a compressed one is streamed. Both
// show the same; a truncated uncompressed archive is still refused as truncated.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileArchiveInput, openArchiveSource, type ArchiveInput } from '../../src/format/checkpoint-source';
import { inspectCheckpoint } from '../../src/format/checkpoint-inspect';
import { ProcessMemory } from '../../src/format/criu/memory';
import { memoryMatches } from '../../src/ferry/commands/memory-output';
import { PAGE_SIZE } from '../../src/format/criu/magic';
import { writeFakeCheckpoint } from '../helpers/criu-images';

let tmp: string;
let stage: string;
const BIG = 8 * 1024 * 1024;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-random-'));
  stage = path.join(tmp, 'stage');
  const ck = path.join(stage, 'checkpoint');
  writeFakeCheckpoint(ck);
  // Process 1's pages image gets 8 MiB of trailing bytes beyond its pagemap (never needed).
  fs.appendFileSync(path.join(ck, 'pages-200.img'), Buffer.alloc(BIG, 0x61));
  fs.writeFileSync(path.join(stage, 'config.dump'), JSON.stringify({ id: 'abc', name: 'c1' }));
  fs.writeFileSync(path.join(stage, 'spec.dump'), JSON.stringify({ annotations: { 'io.kubernetes.cri.container-name': 'web' } }));
  fs.writeFileSync(path.join(stage, 'rootfs-diff.tar'), Buffer.alloc(BIG));
  execFileSync('tar', ['-cf', path.join(tmp, 'a.tar'), '-C', stage, '.']);
  execFileSync('tar', ['--zstd', '-cf', path.join(tmp, 'a.tar.zst'), '-C', stage, '.']);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** fileArchiveInput, counting what is read through each path. */
function counted(file: string): { input: ArchiveInput; stats: { streamed: number; randomBytes: number } } {
  const base = fileArchiveInput(file);
  const stats = { streamed: 0, randomBytes: 0 };
  return {
    stats,
    input: {
      describe: base.describe,
      open: async () => { stats.streamed++; return base.open(); },
      openRandom: async () => {
        const ra = await base.openRandom!();
        return { ...ra, read: async (pos: number, len: number) => { const b = await ra.read(pos, len); stats.randomBytes += b.length; return b; } };
      },
    },
  };
}

const ALL = { psTree: true, psTreeCmd: true, psTreeEnv: true, files: true, sockets: true, mounts: true };

test('an uncompressed archive is indexed and inspected without reading its bulk; a compressed one is streamed; both show the same', async () => {
  const plain = counted(path.join(tmp, 'a.tar'));
  const src = await openArchiveSource(plain.input);
  const fromPlain = (await inspectCheckpoint(src, ALL)).json;
  expect(plain.stats.streamed).toBe(0);
  expect(plain.stats.randomBytes).toBeLessThan(3 * 1024 * 1024);
  expect(fs.statSync(path.join(tmp, 'a.tar')).size).toBeGreaterThan(2 * BIG);

  const zstd = counted(path.join(tmp, 'a.tar.zst'));
  const fromZstd = (await inspectCheckpoint(await openArchiveSource(zstd.input), ALL)).json;
  expect(zstd.stats.streamed).toBeGreaterThanOrEqual(2);
  expect(fromPlain).toEqual(fromZstd);
  expect(fromPlain.checkpoint_size.root_fs_diff_size).toBe(BIG);
  expect(fromPlain.process_tree?.environment_variables?.FERRY_TEST_VAR).toBe('hello');

  // The memory of a process, streamed in place.
  const mem = await ProcessMemory.open(src.images, 1, PAGE_SIZE);
  expect((await memoryMatches(src.images, mem, PAGE_SIZE, { text: 'FERRY_TEST_VAR', context: 0 })).map((m) => m.match)).toEqual(['FERRY_TEST_VAR']);
});

test('a truncated uncompressed archive is refused as truncated, as when it is streamed', async () => {
  const whole = fs.readFileSync(path.join(tmp, 'a.tar'));
  const cut = path.join(tmp, 'cut.tar');
  // Cut inside the last big body: its header is there, most of its bytes are not.
  fs.writeFileSync(cut, whole.subarray(0, whole.length - BIG / 2));
  await expect(openArchiveSource(fileArchiveInput(cut))).rejects.toThrow(new RegExp(`^checkpoint archive ${cut}: truncated archive`));
  const noRandom = { ...fileArchiveInput(cut), openRandom: undefined };
  await expect(openArchiveSource(noRandom)).rejects.toThrow(new RegExp(`^checkpoint archive ${cut}: truncated archive`));
});
