import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../src/errors';
import { DirImageStore } from '../../src/format/criu/image-store';
import { assertCriuImagesComplete, formatProblems, verifyCriuImages } from '../../src/format/criu/verify';
import { encodeEntry, imageFile, writeFakeCheckpoint } from '../helpers/criu-images';
import { inventoryEntry } from '../../api/gen/criu/inventory';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-criu-verify-'));
  writeFakeCheckpoint(dir);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const verify = () => verifyCriuImages(new DirImageStore(dir));
const lines = async () => formatProblems(await verify());

test('a complete image set passes and is counted', async () => {
  const r = await verify();
  expect(r.problems).toEqual([]);
  expect(r).toMatchObject({ ok: true, imageVersion: 2, processes: 3, threads: 4, pagemaps: 3, pagesBytes: 3 * 3 * 4096 });
  await expect(assertCriuImagesComplete(dir)).resolves.toMatchObject({ ok: true });
});

test('compat_nr_pages-only pagemaps (CRIU before 4.2) pass too', async () => {
  fs.rmSync(dir, { recursive: true });
  writeFakeCheckpoint(dir, { processes: [{ pid: 1, ppid: 0, comm: 'sh', argv: ['sh'], env: [] }], pagemapStyle: 'compat' });
  expect(await lines()).toEqual([]);
});

test('a truncated pages image is named with both lengths', async () => {
  fs.truncateSync(path.join(dir, 'pages-201.img'), 4096 * 3 - 100);
  expect(await lines()).toEqual([
    `${dir}/pages-201.img: is 12188 bytes, but pagemap-7.img says 12288 bytes (3 pages of 4096 bytes): truncated`,
  ]);
});

test('a pages image longer than its pagemap is inconsistent too', async () => {
  fs.appendFileSync(path.join(dir, 'pages-200.img'), Buffer.alloc(4096));
  expect(await lines()).toEqual([`${dir}/pages-200.img: is 16384 bytes, but pagemap-1.img says 12288 bytes (3 pages of 4096 bytes)`]);
});

test('missing images: core of a thread, a pages file, inventory — all reported at once', async () => {
  fs.rmSync(path.join(dir, 'core-9.img'));
  fs.rmSync(path.join(dir, 'pages-202.img'));
  fs.rmSync(path.join(dir, 'inventory.img'));
  fs.rmSync(path.join(dir, 'mm-7.img'));
  expect(await lines()).toEqual([
    `${dir}/inventory.img: missing`,
    `${dir}/mm-7.img: missing`,
    `${dir}/core-9.img: missing`,
    `${dir}/pages-202.img: missing (pagemap-8.img puts 12288 bytes of pages in it)`,
  ]);
});

test('an unknown image version and a pre-fdinfo_per_id inventory are refused', async () => {
  fs.writeFileSync(path.join(dir, 'inventory.img'), imageFile('INVENTORY', [encodeEntry(inventoryEntry, { imgVersion: 3 }, [1])], 'type-only'));
  expect(await lines()).toEqual([
    `${dir}/inventory.img: image version 3 is not one CRIU restores (1 or 2)`,
    `${dir}/inventory.img: images older than fdinfo_per_id, which CRIU no longer restores`,
  ]);
});

test('a corrupt core image is reported with file and offset', async () => {
  const f = path.join(dir, 'core-7.img');
  const data = fs.readFileSync(f);
  data.writeUInt32LE(0xffff, 8); // entry size beyond the file
  fs.writeFileSync(f, data);
  expect(await lines()).toEqual([`${dir}/core-7.img: entry of 65535 bytes is longer than the ${data.length - 12} bytes left in the file at offset 8`]);
});

test('a symlinked image is refused, never followed', async () => {
  const outside = path.join(dir, '..', `${path.basename(dir)}-outside`);
  fs.copyFileSync(path.join(dir, 'pages-200.img'), outside);
  fs.rmSync(path.join(dir, 'pages-200.img'));
  fs.symlinkSync(outside, path.join(dir, 'pages-200.img'));
  try {
    expect(await lines()).toEqual([`${dir}/pages-200.img: ${dir}/pages-200.img is a symlink, not a regular file; refusing it`]);
  } finally {
    fs.rmSync(outside);
  }
});

test('a parent outside the tree is reported', async () => {
  fs.rmSync(dir, { recursive: true });
  writeFakeCheckpoint(dir, { processes: [{ pid: 1, ppid: 0, comm: 'sh', argv: [], env: [] }, { pid: 5, ppid: 4, comm: 'x', argv: [], env: [] }] });
  expect(await lines()).toEqual([`${dir}/pstree.img: pid 5 has parent 4, which is not in the tree`]);
});

test('assertCriuImagesComplete refuses with one InvalidArgument line naming the problems', async () => {
  fs.truncateSync(path.join(dir, 'pages-200.img'), 0);
  const err = await assertCriuImagesComplete(dir).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toBe(
    `restore refused: the checkpoint's CRIU images are incomplete or inconsistent: ${dir}/pages-200.img: is 0 bytes, but pagemap-1.img says 12288 bytes (3 pages of 4096 bytes): truncated`,
  );
  expect((err as Error).message).not.toContain('\n');
});
