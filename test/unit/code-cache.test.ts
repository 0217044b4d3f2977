// The bundle loader (src/loader/code-cache.ts) and the cache producer (produce-cache.ts), run in
// real node processes the way the launcher runs them: a cache made for the bundle is used; one
// made for another build of it (same length, other id), a missing one, or one V8 refuses is
// never used, and the bundle still runs.
import { execFileSync } from 'child_process';
import { buildSync } from 'esbuild';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BUILD_ID_MARK, BUNDLE_WRAPPER_END, BUNDLE_WRAPPER_START, buildIdOf, cachedDataFor, CACHE_MAGIC } from '../../src/loader/code-cache';

const root = path.resolve(__dirname, '../..');
let dir: string;
let producer: string;
let loader: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-code-cache-'));
  producer = path.join(dir, 'produce-cache.js');
  loader = path.join(dir, 'load.js');
  const common = { bundle: true, platform: 'node' as const, format: 'cjs' as const, target: 'node20', logLevel: 'error' as const };
  buildSync({ ...common, entryPoints: [path.join(root, 'src/loader/produce-cache.ts')], outfile: producer });
  // Loads argv[2] and prints what it exported and how the cache went.
  buildSync({
    ...common, outfile: loader,
    stdin: {
      resolveDir: path.join(root, 'src/loader'), loader: 'ts', sourcefile: 'load.ts',
      contents: `import * as v8 from 'node:v8';
        import { loadBundle, loadReports } from './code-cache';
        const heapUsed = () => v8.getHeapStatistics().used_heap_size;
        const before = heapUsed();
        const m = loadBundle(process.argv[2]) as { answer(): number; dir: string };
        const heldBytes = heapUsed() - before;
        if (process.env.SHOW_MAPPED) console.log(JSON.stringify({ answer: m.answer(), mapped: loadReports[0].mapped, heldBytes }));
        else console.log(JSON.stringify({ answer: m.answer(), dir: m.dir, cache: loadReports[0].cache }));`,
    },
  });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * A bundle like contrib/bundle.js writes: CommonJS, exports, its build id on the last line, the
 * function wrapper in the file (or, `wrapped` false, a plain CommonJS file the loader wraps).
 */
function writeBundle(name: string, id: string, value: number, opts: { wrapped?: boolean; padding?: string } = {}): string {
  const file = path.join(dir, name);
  const fns = Array.from({ length: 50 }, (_, i) => `function f${i}(x) { return x + ${i}; }`).join('\n');
  const body = `'use strict';\n${fns}\n${opts.padding ?? ''}\nexports.answer = () => f0(${value});\nexports.dir = __dirname;\n`;
  const text = opts.wrapped === false ? body : `${BUNDLE_WRAPPER_START}${body}${BUNDLE_WRAPPER_END}\n`;
  fs.writeFileSync(file, `${text}${BUILD_ID_MARK}${id}\n`);
  return file;
}

const load = (file: string, flags: string[] = []) =>
  JSON.parse(execFileSync(process.execPath, [...flags, loader, file], { encoding: 'utf8' })) as { answer: number; dir: string; cache: string };

test('the build id is read from the bundle\'s last mark', () => {
  expect(buildIdOf(`x\n${BUILD_ID_MARK}abc123\n//# sourceMappingURL=x.map\n`)).toBe('abc123');
  expect(buildIdOf('no id here')).toBe('');
});

test('a cache made for the bundle is used; the bundle runs as CommonJS beside its files', () => {
  const file = writeBundle('a.js', 'id-a', 42);
  expect(load(file)).toEqual({ answer: 42, dir, cache: 'absent' });
  execFileSync(process.execPath, [producer, file, 'eager']);
  expect(fs.readFileSync(`${file}.cache`).toString('latin1', 0, CACHE_MAGIC.length + 6)).toBe(`${CACHE_MAGIC} id-a\n`);
  expect(load(file)).toEqual({ answer: 42, dir, cache: 'used' });
});

test('a cache of another build with the same length is never used', () => {
  const file = writeBundle('b.js', 'id-b1', 1);
  execFileSync(process.execPath, [producer, file, 'lazy']);
  const cache = fs.readFileSync(`${file}.cache`);
  // Another build: same length, other code and id. V8 alone would accept the old cache.
  writeBundle('b.js', 'id-b2', 7);
  fs.writeFileSync(`${file}.cache`, cache);
  expect(cachedDataFor(`${file}.cache`, 'id-b2')).toBeUndefined();
  expect(load(file)).toEqual({ answer: 7, dir, cache: 'foreign' });
});

test('a cache V8 refuses (made under other flags) costs the cache, not the run', () => {
  const file = writeBundle('c.js', 'id-c', 5);
  // A V8 flag the launchers do not give node, so nothing sets it back (src/loader/launcher-flags.ts).
  execFileSync(process.execPath, ['--stack-size=2000', producer, file, 'lazy']);
  expect(load(file)).toEqual({ answer: 5, dir, cache: 'rejected' });
  expect(load(file, ['--stack-size=2000'])).toEqual({ answer: 5, dir, cache: 'used' });
});

test('a bundle without the wrapper in its file is wrapped by the loader, with its cache', () => {
  const file = writeBundle('plain.js', 'id-p', 9, { wrapped: false });
  execFileSync(process.execPath, [producer, file, 'lazy']);
  expect(load(file)).toEqual({ answer: 9, dir, cache: 'used' });
});

describe('the source as a mapping of the file (the native addon beside the loader, as in dist/)', () => {
  const showMapped = (file: string) => JSON.parse(execFileSync(process.execPath, [loader, file], {
    encoding: 'utf8', env: { ...process.env, SHOW_MAPPED: '1' },
  })) as { answer: number; mapped: boolean; heldBytes: number };
  // ~2 MB of comment: a source V8 would hold on its heap if it were read.
  const padding = `/*${'x'.repeat(2 * 1024 * 1024)}*/`;

  beforeAll(() => fs.copyFileSync(path.join(root, 'build', 'Release', 'ferry_sys.node'), path.join(dir, 'ferry_sys.node')));
  afterAll(() => fs.rmSync(path.join(dir, 'ferry_sys.node'), { force: true }));

  test('a wrapped ASCII bundle is compiled from the mapping, and its source is not on the heap', () => {
    const file = writeBundle('mapped.js', 'id-m', 3, { padding });
    execFileSync(process.execPath, [producer, file, 'lazy']);
    const r = showMapped(file);
    expect(r).toMatchObject({ answer: 3, mapped: true });
    expect(r.heldBytes).toBeLessThan(1024 * 1024);
    expect(load(file)).toEqual({ answer: 3, dir, cache: 'used' });
  });

  test('a bundle that is not pure ASCII is read, not mapped (latin1 would misread its UTF-8)', () => {
    const file = writeBundle('read.js', 'id-r', 4, { padding: '/* \u00e9 */' });
    expect(showMapped(file)).toMatchObject({ answer: 4, mapped: false });
  });

  test('an unwrapped bundle is read and wrapped, never mapped: its source is on the heap', () => {
    const file = writeBundle('plain-mapped.js', 'id-pm', 6, { wrapped: false, padding });
    const r = showMapped(file);
    expect(r).toMatchObject({ answer: 6, mapped: false });
    expect(r.heldBytes).toBeGreaterThan(2 * 1024 * 1024);
  });
});
