// The Kubernetes-layout archive writer and the writable-layer conversion (OCI layer with
// whiteouts → rootfs-diff.tar + deleted.files): order and modes of the entries, exact size
// known in advance, digests of the uncompressed tar, every compression read back by our reader
// and by GNU tar.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { archiveStream, checkpointArchiveEntries, tarSize } from '../../src/format/checkpoint-archive-writer';
import { rootfsDiffEntries, RootfsDiffSummary } from '../../src/format/rootfs-diff';
import { openArchiveStream, readTarEntries } from '../../src/format/tar-reader';
import { TarWriteEntry, writeTar } from '../../src/format/tar-writer';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ckw-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

async function list(bytes: Buffer): Promise<{ compression: string; entries: { name: string; type: string; mode: number; data?: Buffer }[] }> {
  const { compression, stream } = await openArchiveStream(Readable.from([bytes]));
  const entries: { name: string; type: string; mode: number; data?: Buffer }[] = [];
  for await (const e of readTarEntries(stream)) {
    entries.push({ name: e.header.name, type: e.header.type, mode: e.header.mode, data: e.header.type === 'file' ? await collect(e.body()) : undefined });
  }
  return { compression, entries };
}

/** An OCI layer as containerd's differ writes one: parent dirs, whiteouts, xattrs. */
function layer(extra: TarWriteEntry[] = []): TarWriteEntry[] {
  return [
    { name: './', type: 'directory', mtime: 1 },
    { name: 'etc', type: 'directory', mtime: 1 },
    { name: 'etc/.wh.motd', type: 'file', body: Buffer.alloc(0), mtime: 1 },
    { name: '.wh.opt', type: 'file', body: Buffer.alloc(0), mtime: 1 },
    { name: 'tmp', type: 'directory', mode: 0o1777, mtime: 1 },
    { name: 'tmp/new', type: 'file', body: Buffer.from('x\n'), mode: 0o640, uid: 7, gid: 8, mtime: 2 },
    { name: 'tmp/d', type: 'directory', mtime: 3 },
    { name: 'tmp/link', type: 'symlink', linkname: '../etc/hostname', mtime: 3 },
    { name: 'tmp/hard', type: 'hardlink', linkname: '/tmp/new', mtime: 3 },
    { name: 'bin/ping', type: 'file', body: Buffer.from('elf'), mode: 0o755, pax: { 'SCHILY.xattr.security.capability': Buffer.from([1, 0, 0, 2]) }, mtime: 3 },
    ...extra,
  ];
}

async function convert(layerBytes: Buffer): Promise<{ tar: Buffer; summary: RootfsDiffSummary }> {
  const summary: RootfsDiffSummary = { deletedFiles: [], entries: 0 };
  const tar = await collect(writeTar(rootfsDiffEntries(Readable.from([layerBytes]), summary)));
  return { tar, summary };
}

test('an OCI layer becomes rootfs-diff.tar without whiteouts plus the deleted paths', async () => {
  const { tar, summary } = await convert(await collect(writeTar(layer())));
  expect(summary.deletedFiles).toEqual(['/etc/motd', '/opt']);
  const { entries } = await list(tar);
  expect(entries.map((e) => e.name)).toEqual(['etc/', 'tmp/', 'tmp/new', 'tmp/d/', 'tmp/link', 'tmp/hard', 'bin/ping']);
  expect(summary.entries).toBe(7);
  const out = path.join(tmp, 'rootfs');
  fs.mkdirSync(out);
  const file = path.join(tmp, 'rootfs-diff.tar');
  fs.writeFileSync(file, tar);
  execFileSync('tar', ['-xpf', file, '-C', out]);
  expect(fs.readFileSync(path.join(out, 'tmp/new'), 'utf8')).toBe('x\n');
  expect(fs.statSync(path.join(out, 'tmp/new'))).toMatchObject({ uid: 7, gid: 8 });
  expect(fs.statSync(path.join(out, 'tmp/new')).mode & 0o7777).toBe(0o640);
  expect(fs.statSync(path.join(out, 'tmp')).mode & 0o7777).toBe(0o1777);
  expect(fs.readlinkSync(path.join(out, 'tmp/link'))).toBe('../etc/hostname');
  expect(fs.statSync(path.join(out, 'tmp/hard')).ino).toBe(fs.statSync(path.join(out, 'tmp/new')).ino);
  // The capability xattr is still in the converted tar.
  const ping = (await (async () => { for await (const e of readTarEntries(Readable.from([tar]))) if (e.header.name === 'bin/ping') return e.header; return undefined; })())!;
  expect(ping.pax!['SCHILY.xattr.security.capability']).toEqual(Buffer.from([1, 0, 0, 2]));
});

test('an opaque directory marker is refused rather than converted wrongly', async () => {
  const bytes = await collect(writeTar(layer([{ name: 'var/cache/.wh..wh..opq', type: 'file', body: Buffer.alloc(0), mtime: 1 }])));
  await expect(convert(bytes)).rejects.toThrow('writable layer: opaque directory marker in "var/cache" cannot be expressed in deleted.files');
});

test('the archive: metadata first, checkpoint/ 0700 with 0600 images, exact size, digests, every compression', async () => {
  const images = path.join(tmp, 'images');
  fs.mkdirSync(images);
  fs.writeFileSync(path.join(images, 'pages-1.img'), Buffer.alloc(70_000, 1));
  fs.writeFileSync(path.join(images, 'inventory.img'), 'inv');
  fs.writeFileSync(path.join(images, 'descriptors.json'), '["/dev/null"]');
  const dumpLog = path.join(tmp, 'dump.log');
  fs.writeFileSync(dumpLog, 'log\n');
  const rootfsDiff = path.join(tmp, 'rd.tar');
  fs.writeFileSync(rootfsDiff, await collect(writeTar([{ name: 'tmp/new', type: 'file', body: Buffer.from('x'), mtime: 1 }])));

  const entries = await checkpointArchiveEntries({
    configDump: { id: 'c1', name: 'c1' }, specDump: { ociVersion: '1.0.2' }, statusDump: { id: 'c1' },
    imagesDir: images, rootfsDiffTar: rootfsDiff, deletedFiles: ['/etc/motd'], dumpLog, time: new Date(1_700_000_000_000),
  });
  const expected = tarSize(entries);
  for (const compression of ['none', 'gzip', 'zstd'] as const) {
    let progressed = 0;
    const { stream, uncompressed } = archiveStream(entries, { compression, onProgress: (n) => { progressed = n; } });
    const file = path.join(tmp, `archive-${compression}`);
    await pipeline(stream, fs.createWriteStream(file));
    const bytes = fs.readFileSync(file);
    const { compression: detected, entries: back } = await list(bytes);
    expect(detected).toBe(compression);
    expect(back.map((e) => [e.name, e.mode.toString(8)])).toEqual([
      ['config.dump', '600'], ['spec.dump', '600'], ['status.dump', '600'],
      ['checkpoint/', '700'], ['checkpoint/descriptors.json', '600'], ['checkpoint/inventory.img', '600'], ['checkpoint/pages-1.img', '600'],
      ['rootfs-diff.tar', '600'], ['deleted.files', '600'], ['dump.log', '600'],
    ]);
    expect(JSON.parse(back.find((e) => e.name === 'deleted.files')!.data!.toString())).toEqual(['/etc/motd']);
    expect(JSON.parse(back.find((e) => e.name === 'config.dump')!.data!.toString())).toEqual({ id: 'c1', name: 'c1' });
    expect(uncompressed.bytes).toBe(expected);
    expect(progressed).toBe(expected);
    const flag = { none: [], gzip: ['-z'], zstd: ['--zstd'] }[compression];
    const plain = execFileSync('tar', [...flag, '-xOf', file, 'checkpoint/pages-1.img']);
    expect(plain.equals(Buffer.alloc(70_000, 1))).toBe(true);
    const raw = compression === 'none' ? bytes : execFileSync(compression === 'gzip' ? 'gzip' : 'zstd', ['-dc', file], { maxBuffer: 1 << 26 });
    expect(uncompressed.digest()).toBe(`sha256:${createHash('sha256').update(raw).digest('hex')}`);
  }
});

test('without digest: the same bytes, and no digest to ask for', async () => {
  const images = path.join(tmp, 'images3');
  fs.mkdirSync(images);
  fs.writeFileSync(path.join(images, 'pages-1.img'), 'abc');
  const entries = await checkpointArchiveEntries({ configDump: {}, specDump: {}, imagesDir: images, time: new Date(0) });
  const a = archiveStream(entries, { compression: 'none' });
  const b = archiveStream(entries, { compression: 'none', digest: false });
  expect((await collect(b.stream)).equals(await collect(a.stream))).toBe(true);
  expect(b.uncompressed.bytes).toBe(tarSize(entries));
  expect(() => b.uncompressed.digest()).toThrow(/not computed/);
});

test('a file that changed size after the entries were built fails the stream', async () => {
  const images = path.join(tmp, 'images2');
  fs.mkdirSync(images);
  fs.writeFileSync(path.join(images, 'pages-1.img'), 'abc');
  const entries = await checkpointArchiveEntries({ configDump: {}, specDump: {}, imagesDir: images });
  fs.writeFileSync(path.join(images, 'pages-1.img'), 'ab');
  const { stream } = archiveStream(entries, { compression: 'zstd' });
  // The file is opened first: a write stream's own open would still be in flight when the (now
  // synchronous) size check ends the pipeline, and create the file while afterAll removes tmp.
  const fh = await fs.promises.open(path.join(tmp, 'broken'), 'w');
  try {
    await expect(pipeline(stream, fh.createWriteStream())).rejects.toThrow(/has 2 bytes, 3 declared/);
  } finally {
    await fh.close().catch(() => undefined);
  }
});
