// Generates the corpus of crafted malicious checkpoint archives (issue 4 item 11). Each entry
// says what staging must do with it: refuse it (an error naming the entry, nothing staged) or
// sanitize it (stage it, skipping exactly the listed entries, producing exactly the listed
// tree). The layout the escapes aim at: the bundle sits in a "host" directory, so from
// <host>/bundle/ctrd-restore, `../../canary.txt` is <host>/canary.txt.
//
// Used by test/unit/checkpoint-corpus.test.ts; the e2e tests can reuse writeCorpusArchive()
// for checkpoint images imported into containerd. CLI (no ts-node here):
//   npx esbuild test/corpus/generate-malicious.ts --bundle --platform=node --outfile=/tmp/gen.js && node /tmp/gen.js OUTDIR

import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  RawEntry, base256, buildTar, dir, file, gnuLongName, gzip, hardlink, pax, symlink, zstdStored,
} from './tar-writer';

export type Expectation =
  | { outcome: 'refused'; error: RegExp }
  | {
      outcome: 'sanitized';
      /** entry names (as stored) that must be reported skipped, in order */
      skipped: string[];
      /** the complete staged tree: relative path -> file content and mode, or a directory's mode */
      tree: Record<string, { content: string; mode: number } | { dirMode: number }>;
    };

export interface CorpusCase {
  id: string;
  description: string;
  /** archive bytes */
  archive: () => Buffer;
  expect: Expectation;
}

export interface CorpusEntry extends Omit<CorpusCase, 'archive'> {
  /** absolute path of the written archive */
  file: string;
}

const inventory = file('inventory.img', 'inventory');
const ok = (content: string, mode = 0o644) => ({ content, mode });
/** directories created implicitly (as parents) are 0700 */
const d = (dirMode = 0o700) => ({ dirMode });
const refused = (error: RegExp): Expectation => ({ outcome: 'refused', error });
const escape = file('../../canary.txt', 'pwned');

export const CORPUS: CorpusCase[] = [
  {
    id: 'dotdot-escape',
    description: 'file named ../../canary.txt overwrites a host file',
    archive: () => buildTar([inventory, escape]),
    expect: refused(/"\.\.\/\.\.\/canary\.txt" refused: name has a "\.\." component/),
  },
  {
    id: 'absolute-path',
    description: 'file named /etc/x',
    archive: () => buildTar([file('/etc/ferry-corpus-x', 'pwned')]),
    expect: refused(/"\/etc\/ferry-corpus-x" refused: absolute name/),
  },
  {
    id: 'nested-dotdot',
    description: 'a/../../x climbs out after a harmless component',
    archive: () => buildTar([dir('a'), file('a/../../planted.txt', 'pwned')]), // target does not exist: O_EXCL would not stop it
    expect: refused(/"a\/\.\.\/\.\.\/planted\.txt" refused: name has a "\.\." component/),
  },
  {
    id: 'dotdot-dir-entry',
    description: 'directory entry ./../ (a dot trick that is really a climb)',
    archive: () => buildTar([dir('./../')]),
    expect: refused(/"\.\/\.\.\/" refused: name has a "\.\." component/),
  },
  {
    id: 'symlink-then-file-through-it',
    description: 'symlink out → ../.., then a file written "through" it',
    archive: () => buildTar([symlink('out', '../..'), file('out/canary.txt', 'pwned')]),
    expect: {
      outcome: 'sanitized',
      skipped: ['out'],
      tree: { out: d(), 'out/canary.txt': ok('pwned') }, // lands inside staging: the link never existed
    },
  },
  {
    id: 'absolute-symlink-dir',
    description: 'symlink etc → /etc, then etc/passwd',
    archive: () => buildTar([symlink('etc', '/etc'), file('etc/passwd', 'root::0:0::/:/bin/sh\n')]),
    expect: { outcome: 'sanitized', skipped: ['etc'], tree: { etc: d(), 'etc/passwd': ok('root::0:0::/:/bin/sh\n') } },
  },
  {
    id: 'hardlink-to-passwd',
    description: 'hard link pages-1.img → /etc/passwd',
    archive: () => buildTar([inventory, hardlink('pages-1.img', '/etc/passwd')]),
    expect: { outcome: 'sanitized', skipped: ['pages-1.img'], tree: { 'inventory.img': ok('inventory') } },
  },
  {
    id: 'hardlink-then-write',
    description: 'hard link to a host file, then a regular file of the same name writing through it',
    archive: () => buildTar([hardlink('h', '../../canary.txt'), file('h', 'pwned')]),
    expect: refused(/"h" refused: duplicate entry/),
  },
  {
    id: 'char-device',
    description: 'character device null (1,3)',
    archive: () => buildTar([inventory, { name: 'null', type: '3', mode: 0o666, devmajor: 1, devminor: 3 }]),
    expect: { outcome: 'sanitized', skipped: ['null'], tree: { 'inventory.img': ok('inventory') } },
  },
  {
    id: 'block-device',
    description: 'block device sda (8,0)',
    archive: () => buildTar([{ name: 'sda', type: '4', mode: 0o660, devmajor: 8, devminor: 0 }, inventory]),
    expect: { outcome: 'sanitized', skipped: ['sda'], tree: { 'inventory.img': ok('inventory') } },
  },
  {
    id: 'fifo',
    description: 'FIFO that would block a reader',
    archive: () => buildTar([{ name: 'fifo', type: '6', mode: 0o644 }]),
    expect: { outcome: 'sanitized', skipped: ['fifo'], tree: {} },
  },
  {
    id: 'spec-dump-fifo',
    description: 'spec.dump as a FIFO (reading it back would block the shim)',
    archive: () => buildTar([inventory, { name: 'spec.dump', type: '6', mode: 0o644 }]),
    expect: { outcome: 'sanitized', skipped: ['spec.dump'], tree: { 'inventory.img': ok('inventory') } },
  },
  {
    id: 'symlink-named-like-image',
    description: 'inventory.img as a symlink to /etc/shadow',
    archive: () => buildTar([symlink('inventory.img', '/etc/shadow'), file('core-1.img', 'core')]),
    expect: { outcome: 'sanitized', skipped: ['inventory.img'], tree: { 'core-1.img': ok('core') } },
  },
  {
    id: 'setuid-and-world-writable',
    description: 'setuid/setgid/sticky and group/other-writable modes are stripped',
    archive: () =>
      buildTar([
        file('suid', '#!/bin/sh\n', 0o6777),
        file('ww', 'x', 0o666),
        file('private', 'p', 0o600),
        dir('sticky', 0o1777),
        dir('closed', 0o500),
      ]),
    expect: {
      outcome: 'sanitized',
      skipped: [],
      tree: { suid: ok('#!/bin/sh\n', 0o755), ww: ok('x', 0o644), private: ok('p', 0o600), sticky: d(0o755), closed: d(0o700) },
    },
  },
  {
    id: 'pax-path-escape',
    description: 'harmless header name, PAX path=../../canary.txt',
    archive: () => buildTar([pax({ path: '../../planted.txt' }), file('harmless', 'pwned')]),
    expect: refused(/"\.\.\/\.\.\/planted\.txt" refused: name has a "\.\." component/),
  },
  {
    id: 'pax-global-path-escape',
    description: 'PAX global header path=/etc/x applies to the following entry',
    archive: () => buildTar([pax({ path: '/etc/ferry-corpus-g' }, 'g'), file('harmless', 'pwned')]),
    expect: refused(/"\/etc\/ferry-corpus-g" refused: absolute name/),
  },
  {
    id: 'pax-nul-in-path',
    description: 'PAX path with an embedded NUL (C code would see only "ok")',
    archive: () => buildTar([pax({ path: Buffer.from('ok\0../../canary.txt') }), file('harmless', 'pwned')]),
    expect: refused(/refused: name contains a NUL byte/),
  },
  {
    id: 'pax-size-lies',
    description: 'PAX size larger than the body: the archive is truncated',
    archive: () => buildTar([pax({ size: '999999' }), file('pages-1.img', 'short')]),
    expect: refused(/truncated archive/),
  },
  {
    id: 'pax-malformed-length',
    description: 'PAX record whose length overruns the header',
    archive: () => buildTar([{ name: 'PaxHeader', type: 'x', data: Buffer.from('99 path=x\n') }, file('a', 'a')]),
    expect: refused(/PAX header: record overruns/),
  },
  {
    id: 'gnu-longname-escape',
    description: 'GNU long name (type L) climbing out',
    archive: () => buildTar([gnuLongName('../../' + 'x'.repeat(120) + '/../canary.txt'), file('harmless', 'pwned')]),
    expect: refused(/refused: name has a "\.\." component/),
  },
  {
    id: 'ustar-prefix-escape',
    description: 'POSIX ustar prefix field ".." joined with the name field',
    archive: () => buildTar([{ ...file('planted.txt', 'pwned'), prefix: '../..' }]),
    expect: refused(/"\.\.\/\.\.\/planted\.txt" refused: name has a "\.\." component/),
  },
  {
    id: 'duplicate-entry',
    description: 'inventory.img twice: the second must not replace the first',
    archive: () => buildTar([inventory, file('inventory.img', 'evil')]),
    expect: refused(/"inventory\.img" refused: duplicate entry/),
  },
  {
    id: 'duplicate-via-dot-slash',
    description: 'a and ./a are the same path',
    archive: () => buildTar([file('a', '1'), file('./a', '2')]),
    expect: refused(/"\.\/a" refused: duplicate entry/),
  },
  {
    id: 'file-under-file',
    description: 'a regular file, then a/b treating it as a directory',
    archive: () => buildTar([file('a', '1'), file('a/b', '2')]),
    expect: refused(/"a\/b" refused: parent a is a regular file/),
  },
  {
    id: 'file-replaces-dir',
    description: 'a file entry on top of a directory created for an earlier entry',
    archive: () => buildTar([file('d/x', '1'), file('d', '2')]),
    expect: refused(/"d" refused: conflicts with an earlier entry/),
  },
  {
    id: 'huge-declared-size',
    description: 'declares 7 GiB of body, then the archive ends',
    archive: () => buildTar([{ ...file('pages-1.img', 'abc'), size: 7 * 1024 ** 3, truncateBodyTo: 3 }], { end: false }),
    expect: refused(/truncated archive/),
  },
  {
    id: 'base256-size-overflow',
    description: 'base-256 size beyond 2^53',
    archive: () => buildTar([{ ...file('pages-1.img', ''), sizeField: base256(1n << 80n) }]),
    expect: refused(/base-256 value too large/),
  },
  {
    id: 'base256-negative-size',
    description: 'negative base-256 size',
    archive: () => buildTar([{ ...file('pages-1.img', ''), sizeField: base256(0n, 12, true) }]),
    expect: refused(/negative base-256/),
  },
  {
    id: 'non-octal-size',
    description: 'size field with non-octal text',
    archive: () => buildTar([{ ...file('a', ''), sizeField: Buffer.from('0000000009x\0') }]),
    expect: refused(/not an octal number/),
  },
  {
    id: 'bad-checksum',
    description: 'header checksum off by one',
    archive: () => buildTar([{ ...inventory, checksumDelta: 1 }]),
    expect: refused(/checksum mismatch/),
  },
  {
    id: 'gzip-escape',
    description: 'gzip-compressed ../ escape',
    archive: () => gzip(buildTar([inventory, escape])),
    expect: refused(/"\.\.\/\.\.\/canary\.txt" refused: name has a "\.\." component/),
  },
  {
    id: 'zstd-escape',
    description: 'zstd-compressed ../ escape',
    archive: () => zstdStored(buildTar([inventory, escape])),
    expect: refused(/"\.\.\/\.\.\/canary\.txt" refused: name has a "\.\." component/),
  },
  {
    id: 'gzip-truncated',
    description: 'gzip stream cut in the middle',
    archive: () => {
      const gz = gzip(buildTar([file('pages-1.img', Buffer.alloc(100_000, 7))]));
      return gz.subarray(0, gz.length >> 1);
    },
    expect: refused(/gzip: unexpected end of file|truncated archive/),
  },
  {
    id: 'zstd-symlink-sanitized',
    description: 'zstd archive with a symlink among images',
    archive: () => zstdStored(buildTar([inventory, symlink('core-1.img', '/proc/self/mem')])),
    expect: { outcome: 'sanitized', skipped: ['core-1.img'], tree: { 'inventory.img': ok('inventory') } },
  },
  {
    id: 'dot-entries',
    description: '"." and "./" directory entries (and a "." symlink) aimed at the staging dir itself',
    archive: () => buildTar([dir('.', 0o777), dir('./', 0o1777), symlink('./.', '/'), inventory]),
    expect: { outcome: 'sanitized', skipped: ['./.'], tree: { 'inventory.img': ok('inventory') } },
  },
  {
    id: 'file-named-dot',
    description: 'a regular file named "./" replacing the staging dir',
    archive: () => buildTar([{ ...file('.', 'x'), name: '.' }]),
    expect: refused(/"\." refused: a regular file cannot replace the staging directory/),
  },
  {
    id: 'nul-in-header-name',
    description: 'header name "safe\\0../../canary.txt": tar names are C strings, so this is "safe"',
    archive: () => buildTar([{ ...file('x', 'data'), name: Buffer.from('safe\0../../canary.txt') }]),
    expect: { outcome: 'sanitized', skipped: [], tree: { safe: ok('data') } },
  },
  {
    id: 'unknown-and-sparse-types',
    description: 'GNU sparse (S), volume label (V) and an unknown typeflag',
    archive: () =>
      buildTar([
        { ...file('sparse.img', 'abcd'), type: 'S', format: 'gnu' },
        { name: 'label', type: 'V', format: 'gnu' },
        { ...file('weird', 'zz'), type: 'Z' },
        inventory,
      ]),
    expect: {
      outcome: 'sanitized',
      skipped: ['sparse.img', 'label', 'weird'],
      tree: { 'inventory.img': ok('inventory') },
    },
  },
  {
    id: 'backslash-names',
    description: 'Windows-style ..\\..\\x is one ordinary name on Linux',
    archive: () => buildTar([file('..\\..\\canary.txt', 'x')]),
    expect: { outcome: 'sanitized', skipped: [], tree: { '..\\..\\canary.txt': ok('x') } },
  },
  {
    id: 'long-component',
    description: 'a 300-byte path component (beyond NAME_MAX)',
    archive: () => buildTar([gnuLongName('d/' + 'n'.repeat(300)), file('x', 'x')]),
    expect: refused(/name component too long/),
  },
  {
    id: 'invalid-utf8-name',
    description: 'name bytes that are not UTF-8 (a lossy decode could merge two names)',
    archive: () => buildTar([{ ...file('x', 'x'), name: Buffer.from([0x61, 0xff, 0xfe]) }]),
    expect: refused(/not valid UTF-8/),
  },
  {
    id: 'utf8-lossy-collision',
    description: 'symlink named a\\xff → /etc/shadow beside a regular file named a\\u{fffd}: one name once decoded lossily',
    archive: () => buildTar([file('a\u{fffd}', 'decoy'), { ...symlink('x', '/etc/shadow'), name: Buffer.from([0x61, 0xff]) }]),
    expect: refused(/not valid UTF-8/),
  },
  {
    id: 'legit-checkpoint',
    description: 'control: a plausible CRIU checkpoint with GNU/PAX long names staged intact',
    archive: () =>
      buildTar([
        dir('./'),
        file('./inventory.img', 'inventory', 0o600),
        file('./pages-1.img', Buffer.alloc(70_000, 1).toString(), 0o600),
        file('spec.dump', '{"annotations":{}}', 0o644),
        dir('sub', 0o700),
        gnuLongName('sub/' + 'g'.repeat(150)),
        file('placeholder', 'gnu-long', 0o644),
        pax({ path: 'sub/' + 'p'.repeat(200) }),
        file('placeholder2', 'pax-long', 0o755),
      ]),
    expect: {
      outcome: 'sanitized',
      skipped: [],
      tree: {
        'inventory.img': ok('inventory', 0o600),
        'pages-1.img': ok(Buffer.alloc(70_000, 1).toString(), 0o600),
        'spec.dump': ok('{"annotations":{}}'),
        sub: d(0o700),
        ['sub/' + 'g'.repeat(150)]: ok('gnu-long'),
        ['sub/' + 'p'.repeat(200)]: ok('pax-long', 0o755),
      },
    },
  },
];

/** Writes one corpus archive as <outDir>/<id>.tar (the bytes may be gzip or zstd). */
export async function writeCorpusArchive(c: CorpusCase, outDir: string): Promise<string> {
  const p = path.join(outDir, `${c.id}.tar`);
  await fs.promises.writeFile(p, c.archive());
  return p;
}

/** Writes every corpus archive into outDir and returns the cases with their file paths. */
export async function generateCorpus(outDir: string): Promise<CorpusEntry[]> {
  await fs.promises.mkdir(outDir, { recursive: true });
  const out: CorpusEntry[] = [];
  for (const c of CORPUS) {
    const { archive: _archive, ...rest } = c;
    out.push({ ...rest, file: await writeCorpusArchive(c, outDir) });
  }
  return out;
}

export type { RawEntry };

if (require.main === module) {
  const outDir = process.argv[2];
  if (!outDir) {
    process.stderr.write('usage: generate-malicious OUTDIR\n');
    process.exit(2);
  }
  generateCorpus(outDir).then(
    (entries) => {
      for (const e of entries) process.stdout.write(`${e.expect.outcome.padEnd(9)} ${e.file}  ${e.description}\n`);
    },
    (err) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
