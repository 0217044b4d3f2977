// The tar reader against archives written by GNU tar (every format it writes) and against
// hand-made edge cases.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { openArchiveStream, readTarEntries, TarEntryHeader, TarFormatError } from '../../src/format/tar-reader';
import { buildTar, file, gnuLongName, header, pax, zstdStored } from '../corpus/tar-writer';

let tmp: string;
const longDir = 'd'.repeat(60) + '/' + 'e'.repeat(70);
const longName = `${longDir}/${'f'.repeat(90)}.img`; // > 100 bytes in all, last component fits ustar
const contents: Record<string, Buffer> = {
  'inventory.img': Buffer.from('inventory'),
  'empty.img': Buffer.alloc(0),
  'pages-1.img': Buffer.alloc(300_001, 0xab), // not a multiple of 512: exercises padding
  [longName]: Buffer.from('long'),
};

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-tar-'));
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, longDir), { recursive: true });
  for (const [name, data] of Object.entries(contents)) fs.writeFileSync(path.join(src, name), data);
  fs.chmodSync(path.join(src, 'inventory.img'), 0o600);
  fs.symlinkSync('/etc/passwd', path.join(src, 'link'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Listed extends TarEntryHeader { data?: Buffer }

async function list(input: Readable): Promise<{ compression: string; entries: Map<string, Listed> }> {
  const { compression, stream } = await openArchiveStream(input);
  const entries = new Map<string, Listed>();
  for await (const e of readTarEntries(stream)) {
    const listed: Listed = { ...e.header };
    if (e.header.type === 'file') {
      const chunks: Buffer[] = [];
      for await (const c of e.body()) chunks.push(c);
      listed.data = Buffer.concat(chunks);
    }
    entries.set(e.header.name.replace(/^\.\//, '').replace(/\/$/, ''), listed);
  }
  return { compression, entries };
}

const fromBuffer = (b: Buffer): Readable => Readable.from([b]);

function gnuTar(args: string[]): string {
  const out = path.join(tmp, `out-${args.join('_').replace(/[^a-z0-9]/gi, '')}.tar`);
  execFileSync('tar', ['-C', path.join(tmp, 'src'), '-cf', out, ...args, '.']);
  return out;
}

describe.each([
  ['gnu', ['--format=gnu'], 'none'],
  ['pax', ['--format=pax'], 'none'],
  ['oldgnu', ['--format=oldgnu'], 'none'],
  ['gnu+gzip', ['--format=gnu', '--gzip'], 'gzip'],
  ['pax+zstd', ['--format=pax', '--zstd'], 'zstd'],
])('GNU tar %s archive', (_label, args, compression) => {
  test('lists every entry with the right type, mode and content', async () => {
    const archive = gnuTar(args as string[]);
    const result = await list(fs.createReadStream(archive, { highWaterMark: 1000 })); // odd chunking on purpose
    expect(result.compression).toBe(compression);
    const { entries } = result;
    for (const [name, data] of Object.entries(contents)) {
      expect(entries.get(name)?.type).toBe('file');
      expect(entries.get(name)?.data?.equals(data)).toBe(true); // .equals: jest deep-equal of big buffers is slow
    }
    expect(entries.get('inventory.img')?.mode).toBe(0o600);
    expect(entries.get('link')).toMatchObject({ type: 'symlink', linkname: '/etc/passwd' });
    expect(entries.get(longDir)?.type).toBe('directory');
    expect(entries.get('')?.type).toBe('directory'); // "./"
  });
});

test('ustar prefix field is joined to the name', async () => {
  const archive = gnuTar(['--format=ustar']);
  const { entries } = await list(fs.createReadStream(archive));
  expect(entries.get(longName)?.data).toEqual(Buffer.from('long'));
});

test('base-256 numbers (GNU tar writes them for far-future mtimes)', async () => {
  const archive = path.join(tmp, 'b256.tar');
  execFileSync('tar', ['-C', path.join(tmp, 'src'), '--format=gnu', '--mtime=@99999999999', '-cf', archive, 'inventory.img']);
  expect(fs.readFileSync(archive)[136] & 0x80).toBe(0x80);
  const { entries } = await list(fs.createReadStream(archive));
  expect(entries.get('inventory.img')?.mtime).toBe(99999999999);
});

test('unread bodies are skipped; an entry body read partially does not desync the stream', async () => {
  const tar = buildTar([file('a', Buffer.alloc(2000, 1)), file('b', 'second'), file('c', Buffer.alloc(1500, 3))]);
  const names: string[] = [];
  let b = '';
  for await (const e of readTarEntries(Readable.from([tar]))) {
    names.push(e.header.name);
    if (e.header.name === 'a') {
      const first = await e.body().next(); // read one chunk only
      expect(first.done).toBe(false);
    }
    if (e.header.name === 'b') for await (const c of e.body()) b += c.toString();
  }
  expect(names).toEqual(['a', 'b', 'c']);
  expect(b).toBe('second');
});

test('one byte at a time works (headers and bodies spanning chunks)', async () => {
  const tar = buildTar([pax({ path: 'p'.repeat(300) }), file('x', 'pax body'), gnuLongName('g'.repeat(200)), file('y', 'gnu body')]);
  const bytes = Array.from(tar, (b) => Buffer.from([b]));
  const { entries } = await list(Readable.from(bytes));
  expect(entries.get('p'.repeat(300))?.data?.toString()).toBe('pax body');
  expect(entries.get('g'.repeat(200))?.data?.toString()).toBe('gnu body');
});

test('PAX size overrides the header size; PAX/L apply to one entry only', async () => {
  const body = Buffer.alloc(600, 9);
  const tar = Buffer.concat([
    buildTar([pax({ size: '600', path: 'big' })], { end: false }),
    header({ name: 'ignored', size: 0 }), body, Buffer.alloc(424),
    buildTar([file('next', 'n')]),
  ]);
  const { entries } = await list(fromBuffer(tar));
  expect(entries.get('big')?.data).toEqual(body);
  expect(entries.get('next')?.data?.toString()).toBe('n');
  expect(entries.has('ignored')).toBe(false);
});

test('v7 header: trailing slash on a regular entry means directory', async () => {
  const tar = buildTar([{ name: 'olddir/', type: '0', format: 'v7' }]);
  const { entries } = await list(fromBuffer(tar));
  expect(entries.get('olddir')?.type).toBe('directory');
});

test('an archive ending without end-of-archive blocks is accepted between entries', async () => {
  const { entries } = await list(fromBuffer(buildTar([file('a', 'x')], { end: false })));
  expect(entries.get('a')?.data?.toString()).toBe('x');
});

test.each([
  ['mid-header', buildTar([file('a', 'x')]).subarray(0, 300), /truncated archive: header/],
  ['mid-body', buildTar([file('a', Buffer.alloc(5000))]).subarray(0, 2048), /truncated archive: body of "a"/],
  ['dangling PAX header', buildTar([pax({ path: 'x' })], { end: false }), /metadata header without its entry/],
  ['oversized GNU long name', buildTar([{ ...gnuLongName('x'), size: 2 << 20 }]), /exceeds the 1048576-byte limit/],
  ['not a tar at all', Buffer.alloc(1024, 0x41), /not a tar archive/],
])('%s is a clear TarFormatError', async (_label, bytes, message) => {
  const run = async () => { await list(fromBuffer(bytes)); };
  await expect(run()).rejects.toThrow(TarFormatError);
  await expect(run()).rejects.toThrow(message);
});

test('zstd: real zstd output and stored frames decode; a truncated frame fails clearly', async () => {
  const tar = buildTar([file('z', Buffer.alloc(200_000, 5))]);
  const plain = path.join(tmp, 'z.tar');
  fs.writeFileSync(plain, tar);
  execFileSync('zstd', ['-q', '-f', plain, '-o', `${plain}.zst`]);
  const real = fs.readFileSync(`${plain}.zst`);
  expect((await list(fromBuffer(real))).entries.get('z')?.data).toEqual(Buffer.alloc(200_000, 5));
  expect((await list(fromBuffer(zstdStored(tar)))).entries.get('z')?.data).toEqual(Buffer.alloc(200_000, 5));
  await expect(list(fromBuffer(real.subarray(0, real.length >> 1)))).rejects.toThrow(/zstd: Stream ended in middle of compressed data frame/);
  // Corrupt data inside the frame: a TarFormatError naming zstd, not the addon's raw error.
  const corrupt = Buffer.from(real);
  corrupt.fill(0xa5, 8, Math.min(corrupt.length, 64));
  await expect(list(fromBuffer(corrupt))).rejects.toThrow(TarFormatError);
  await expect(list(fromBuffer(corrupt))).rejects.toThrow(/^zstd: /);
});

test('gzip: corrupt data is a TarFormatError, not a raw zlib error', async () => {
  const gz = execFileSync('gzip', ['-c'], { input: buildTar([file('a', 'hello')]) });
  const bad = Buffer.from(gz);
  bad.fill(0xff, 10, 20);
  await expect(list(fromBuffer(bad))).rejects.toThrow(TarFormatError);
});

test('empty input is an empty archive', async () => {
  expect((await list(fromBuffer(Buffer.alloc(0)))).entries.size).toBe(0);
});
