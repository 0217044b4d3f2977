// The tar writer: round trips through our reader and through GNU tar (plain, gzip, zstd), PAX for
// long names / long links / large sizes, deterministic output, and refusals (a body that does not
// match its declared size, bad names).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressor, parseCompression } from '../../src/format/compression';
import { openArchiveStream, readTarEntries, TarEntryHeader } from '../../src/format/tar-reader';
import { directoryEntries, encodeTarHeader, fileEntry, TarWriteEntry, TarWriteError, writeTar } from '../../src/format/tar-writer';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-tarw-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

interface Listed extends TarEntryHeader { data?: Buffer }

async function readBack(bytes: Buffer): Promise<{ compression: string; entries: Listed[] }> {
  const { compression, stream } = await openArchiveStream(Readable.from([bytes]));
  const entries: Listed[] = [];
  for await (const e of readTarEntries(stream)) {
    const l: Listed = { ...e.header };
    if (e.header.type === 'file') l.data = await collect(e.body());
    entries.push(l);
  }
  return { compression, entries };
}

const longDir = `${'a'.repeat(120)}/${'b'.repeat(120)}`; // no '/' splits it into ustar's 155 + 100: needs PAX
const longName = `${'x'.repeat(90)}/${'y'.repeat(200)}.img`; // last component > 100: needs PAX
const splitName = `${'p'.repeat(140)}/${'q'.repeat(90)}`; // fits ustar prefix (140) + name (90)
const unicode = 'répertoire/ファイル-✓.img';
const pages = Buffer.alloc(300_001, 0xab); // not a multiple of 512

function sampleEntries(): TarWriteEntry[] {
  return [
    { name: 'checkpoint', type: 'directory', mode: 0o700, mtime: 1_700_000_000 },
    { name: 'checkpoint/pages-1.img', type: 'file', size: pages.length, mode: 0o600, body: Readable.from([pages.subarray(0, 100_000), pages.subarray(100_000)]), mtime: 1_700_000_000 },
    { name: 'checkpoint/empty.img', type: 'file', body: Buffer.alloc(0), mode: 0o600, mtime: 1_700_000_000 },
    { name: 'config.dump', type: 'file', body: Buffer.from('{"id":"x"}'), uid: 1000, gid: 1000, uname: 'user', gname: 'group', mtime: 1_700_000_001 },
    { name: longDir, type: 'directory', mtime: 1_700_000_000 },
    { name: longName, type: 'file', body: Buffer.from('long'), mtime: 1_700_000_000 },
    { name: splitName, type: 'file', body: Buffer.from('split'), mtime: 1_700_000_000 },
    { name: unicode, type: 'file', size: 1, body: () => Readable.from([Buffer.from('u')]), mtime: 1_700_000_000 },
    { name: 'link', type: 'symlink', linkname: `/${'l'.repeat(150)}`, mtime: 1_700_000_000 },
    { name: 'hard', type: 'hardlink', linkname: 'config.dump', mtime: 1_700_000_000 },
    { name: 'fifo', type: 'fifo', mode: 0o644, mtime: 1_700_000_000 },
    { name: 'tty', type: 'char-device', mode: 0o620, devmajor: 136, devminor: 3, mtime: 1_700_000_000 },
    { name: 'setuid', type: 'file', body: Buffer.from('s'), mode: 0o4755, mtime: 1_700_000_000 },
  ];
}

test('entries round-trip through our reader: names (ustar split, PAX, UTF-8), types, modes, ids, sizes', async () => {
  const bytes = await collect(writeTar(sampleEntries()));
  expect(bytes.length % 512).toBe(0);
  expect(bytes.subarray(-1024).every((b) => b === 0)).toBe(true);
  const { entries } = await readBack(bytes);
  const byName = new Map(entries.map((e) => [e.name, e]));
  expect(entries.map((e) => e.name)).toEqual([
    'checkpoint/', 'checkpoint/pages-1.img', 'checkpoint/empty.img', 'config.dump', `${longDir}/`, longName, splitName, unicode,
    'link', 'hard', 'fifo', 'tty', 'setuid',
  ]);
  expect(byName.get('checkpoint/')).toMatchObject({ type: 'directory', mode: 0o700 });
  expect(byName.get('checkpoint/pages-1.img')!.data!.equals(pages)).toBe(true);
  expect(byName.get('checkpoint/empty.img')).toMatchObject({ type: 'file', size: 0 });
  expect(byName.get('config.dump')).toMatchObject({ uid: 1000, gid: 1000, mtime: 1_700_000_001, data: Buffer.from('{"id":"x"}') });
  expect(byName.get(longName)!.data).toEqual(Buffer.from('long'));
  expect(byName.get(unicode)!.data).toEqual(Buffer.from('u'));
  expect(byName.get('link')).toMatchObject({ type: 'symlink', linkname: `/${'l'.repeat(150)}` });
  expect(byName.get('hard')).toMatchObject({ type: 'hardlink', linkname: 'config.dump' });
  expect(byName.get('tty')).toMatchObject({ type: 'char-device', devmajor: 136, devminor: 3 });
  expect(byName.get('setuid')!.mode).toBe(0o4755);
});

test('GNU tar lists and extracts the archive, plain, gzip and zstd (tar --zstd)', async () => {
  for (const compression of ['none', 'gzip', 'zstd'] as const) {
    const file = path.join(tmp, `gnu-${compression}.tar`);
    await pipeline(Readable.from(writeTar(sampleEntries().filter((e) => e.type !== 'char-device'))), createCompressor(compression), fs.createWriteStream(file));
    const flag = { none: [], gzip: ['-z'], zstd: ['--zstd'] }[compression];
    const listing = execFileSync('tar', [...flag, '-tvf', file], { encoding: 'utf8' });
    expect(listing).toContain(longName);
    expect(listing).toContain(unicode);
    const out = path.join(tmp, `x-${compression}`);
    fs.mkdirSync(out);
    execFileSync('tar', [...flag, '-xf', file, '-C', out]);
    expect(fs.readFileSync(path.join(out, 'checkpoint/pages-1.img')).equals(pages)).toBe(true);
    expect(fs.readFileSync(path.join(out, longName), 'utf8')).toBe('long');
    expect(fs.readFileSync(path.join(out, splitName), 'utf8')).toBe('split');
    expect(fs.readFileSync(path.join(out, unicode), 'utf8')).toBe('u');
    expect(fs.readlinkSync(path.join(out, 'link'))).toBe(`/${'l'.repeat(150)}`);
    expect(fs.statSync(path.join(out, 'hard')).ino).toBe(fs.statSync(path.join(out, 'config.dump')).ino);
    expect(fs.statSync(path.join(out, 'checkpoint')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(out, 'fifo')).isFIFO()).toBe(true);
    expect((await readBack(fs.readFileSync(file))).compression).toBe(compression);
  }
});

test('a size beyond the 8 GiB ustar limit is carried in a PAX record that GNU tar and our reader honour', async () => {
  const huge = 9 * 1024 ** 3 + 5;
  const header = encodeTarHeader({ name: 'pages-9.img', type: 'file', size: huge, mtime: 1 });
  expect(header.length).toBe(3 * 512); // PAX header + one block of records + ustar header
  expect(header.toString('latin1')).toContain(`size=${huge}\n`);
  for await (const e of readTarEntries(Readable.from([header, Buffer.alloc(512)]))) {
    expect(e.header).toMatchObject({ name: 'pages-9.img', size: huge });
    break; // the body is not there: only the header is checked
  }
  // GNU tar prints the PAX size before it notices the missing body.
  const file = path.join(tmp, 'huge.tar');
  fs.writeFileSync(file, Buffer.concat([header, Buffer.alloc(512)]));
  let listing = '';
  try { listing = execFileSync('tar', ['-tvf', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }); } catch (err) { listing = String((err as { stdout?: string }).stdout); }
  expect(listing).toMatch(new RegExp(`\\b${huge}\\b.*pages-9\\.img`));
});

test('a large uid, mtime and an xattr PAX record are carried; deterministic output drops ownership and time', async () => {
  const cap = Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]);
  const entry: TarWriteEntry = { name: 'bin/ping', type: 'file', body: Buffer.from('elf'), uid: 1 << 24, mtime: 2 ** 34, pax: { 'SCHILY.xattr.security.capability': cap, path: 'ignored' } };
  const { entries } = await readBack(await collect(writeTar([entry])));
  expect(entries[0]).toMatchObject({ name: 'bin/ping' });
  expect(entries[0]!.pax!['SCHILY.xattr.security.capability']!.equals(cap)).toBe(true);
  expect(entries[0]!.pax!.uid!.toString()).toBe(String(1 << 24));
  expect(entries[0]!.pax!.mtime!.toString()).toBe(String(2 ** 34));

  const a = await collect(writeTar([{ ...entry, uname: 'u' }], { deterministic: true }));
  const b = await collect(writeTar([{ ...entry, uid: 5, mtime: 7 }], { deterministic: true }));
  expect(a.equals(b)).toBe(true);
  const det = (await readBack(a)).entries[0]!;
  expect(det).toMatchObject({ uid: 0, gid: 0, mtime: 0 });
  expect(Object.keys(det.pax ?? {})).toEqual(['SCHILY.xattr.security.capability']);
  const fixed = (await readBack(await collect(writeTar([entry], { deterministic: { mtime: 1704067200 } })))).entries[0]!;
  expect(fixed.mtime).toBe(1704067200);
});

test('a body longer or shorter than declared is an error, not a corrupt archive', async () => {
  await expect(collect(writeTar([{ name: 'f', type: 'file', size: 3, body: Buffer.from('four') }]))).rejects.toThrow(/more than the 3 bytes declared/);
  await expect(collect(writeTar([{ name: 'f', type: 'file', size: 10, body: Readable.from([Buffer.from('abc')]) }]))).rejects.toThrow(/has 3 bytes, 10 declared/);
  await expect(collect(writeTar([{ name: 'd', type: 'directory', body: Buffer.from('x') }]))).rejects.toThrow(TarWriteError);
  expect(() => encodeTarHeader({ name: '', type: 'file' })).toThrow(/empty entry name/);
  expect(() => encodeTarHeader({ name: 'a\0b', type: 'file' })).toThrow(/NUL/);
  expect(() => encodeTarHeader({ name: 'l', type: 'symlink' })).toThrow(/no link target/);
  expect(() => encodeTarHeader({ name: 'f', type: 'file', size: -1 })).toThrow(/non-negative/);
  expect(() => encodeTarHeader({ name: 'f', type: 'file', mode: 0o17777 })).toThrow(/permission mode/);
});

test('directoryEntries: the directory first, contents sorted, only regular files and directories', async () => {
  const dir = path.join(tmp, 'images');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'b.img'), 'bb');
  fs.writeFileSync(path.join(dir, 'a.img'), 'a');
  fs.writeFileSync(path.join(dir, 'sub', 'c.img'), 'ccc');
  const entries: TarWriteEntry[] = [];
  for await (const e of directoryEntries(dir, 'checkpoint')) entries.push(e);
  expect(entries.map((e) => [e.name, e.type, e.size ?? 0])).toEqual([
    ['checkpoint', 'directory', 0], ['checkpoint/a.img', 'file', 1], ['checkpoint/b.img', 'file', 2],
    ['checkpoint/sub', 'directory', 0], ['checkpoint/sub/c.img', 'file', 3],
  ]);
  const { entries: back } = await readBack(await collect(writeTar(entries)));
  expect(back.find((e) => e.name === 'checkpoint/sub/c.img')!.data!.toString()).toBe('ccc');

  fs.symlinkSync('a.img', path.join(dir, 'link'));
  const refused = async () => { for await (const e of directoryEntries(dir, 'checkpoint')) void e; };
  await expect(refused()).rejects.toThrow(/neither a regular file nor a directory/);
  fs.unlinkSync(path.join(dir, 'link'));

  // A file that grows between stat and read fails the archive instead of corrupting it.
  const grown: TarWriteEntry[] = [];
  for await (const e of directoryEntries(dir, 'c')) grown.push(e);
  fs.writeFileSync(path.join(dir, 'a.img'), 'grown');
  await expect(collect(writeTar(grown))).rejects.toThrow(/more than the 1 bytes declared/);
});

test('fileEntry: small files (read in one piece) and large ones (streamed) carry their bytes and are held to their stat size', async () => {
  const dir = path.join(tmp, 'sizes');
  fs.mkdirSync(dir);
  const small = path.join(dir, 'small.img');
  const large = path.join(dir, 'large.img');
  fs.writeFileSync(small, 'small body');
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'x');
  fs.writeFileSync(large, big);
  const entries = [await fileEntry(small, 'small.img'), await fileEntry(large, 'large.img')];
  const { entries: back } = await readBack(await collect(writeTar(entries)));
  expect(back.find((e) => e.name === 'small.img')!.data!.toString()).toBe('small body');
  expect(back.find((e) => e.name === 'large.img')!.data!.equals(big)).toBe(true);
  // Shrunk between stat and read: refused, for either path.
  fs.writeFileSync(small, 'tiny');
  await expect(collect(writeTar([entries[0]!]))).rejects.toThrow(/has 4 bytes, 10 declared/);
  fs.truncateSync(large, 1024);
  await expect(collect(writeTar([entries[1]!]))).rejects.toThrow(/has 1024 bytes, 3145745 declared/);
});

test('--compress values', () => {
  expect(parseCompression('zstd')).toBe('zstd');
  expect(parseCompression('gzip')).toBe('gzip');
  expect(parseCompression('none')).toBe('none');
  expect(() => parseCompression('bzip2')).toThrow('unknown compression "bzip2": use one of zstd, gzip, none');
});
