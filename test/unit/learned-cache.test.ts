// The daemon's learned code cache (src/loader/learned-cache.ts): which daemon writes it, that it
// is read back only from a directory and file no one else can write, never through a symlink,
// bounded and for its own build; and, in real node processes loading a bundle through
// loadBundleWith, that a learned cache is written from what ran, then used, and that one V8
// refuses costs the cache, not the run.
import { execFileSync } from 'child_process';
import { buildSync } from 'esbuild';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BUILD_ID_MARK, BUNDLE_WRAPPER_END, BUNDLE_WRAPPER_START } from '../../src/loader/code-cache';
import {
  DEFAULT_LEARNED_CACHE_DIR, KEPT_BUILDS, LEARNED_MAGIC, MAX_LEARNED_CACHE_BYTES, RESTORE_METHOD,
  learnedCacheDirFromEnv, learnedCachePath, methodsToLearn, readLearnedCache, writeLearnedCache,
} from '../../src/loader/learned-cache';

const root = path.resolve(__dirname, '../..');
let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-learned-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const BUNDLE = '/opt/ferry/dist/shim-daemon.js';
const ID = 'b0b0b0b0b0b0';
const set = (...m: string[]) => new Set(m);

test('the directory: /var/cache/ferry by default, FERRY_CODE_CACHE_DIR moves it, empty or relative turns it off', () => {
  expect(learnedCacheDirFromEnv({})).toBe(DEFAULT_LEARNED_CACHE_DIR);
  expect(learnedCacheDirFromEnv({ FERRY_CODE_CACHE_DIR: '/tmp/x' })).toBe('/tmp/x');
  expect(learnedCacheDirFromEnv({ FERRY_CODE_CACHE_DIR: '' })).toBeNull();
  expect(learnedCacheDirFromEnv({ FERRY_CODE_CACHE_DIR: 'relative/dir' })).toBeNull();
  expect(learnedCachePath('/c', BUNDLE, ID)).toBe(`/c/shim-daemon.js.${ID}.v8-${process.versions.v8}.cache`);
});

describe('which daemon writes', () => {
  test('one that started from no learned cache writes what it served, sorted', () => {
    expect(methodsToLearn(undefined, set('Start', 'Create', 'Delete'), undefined)).toEqual(['Create', 'Delete', 'Start']);
  });
  test('one that served nothing new does not write; one that did records the union', () => {
    const cache = ['Create', 'Delete', 'Exec', 'Start'];
    expect(methodsToLearn(cache, set('Create', 'Start', 'Delete'), cache)).toBeUndefined();
    expect(methodsToLearn(['Create', 'Delete', 'Kill', 'Start'], set('Create', 'Start', 'Exec'), ['Create', 'Delete', 'Kill', 'Start'])).toEqual(['Create', 'Delete', 'Exec', 'Kill', 'Start']);
  });
  test('one that started from an older cache does not take back what another daemon added since', () => {
    // A group's long-lived daemon started before an exec daemon added Exec; it serves Connect.
    const older = ['Create', 'Delete', 'Start'];
    const now = ['Create', 'Delete', 'Exec', 'Start'];
    expect(methodsToLearn(older, set('Create', 'Start', 'Connect'), now)).toBeUndefined();
    // One that started from it and serves more writes it all.
    expect(methodsToLearn(now, set('Create', 'Start', 'Connect'), now)).toEqual(['Connect', 'Create', 'Delete', 'Exec', 'Start']);
    // Where the file went away (or V8 refused it), what the daemon has is written.
    expect(methodsToLearn(older, set('Create', 'Start', 'Connect'), undefined)).toEqual(['Connect', 'Create', 'Delete', 'Start']);
  });
  test('one that checkpointed, restored, or never started a container does not write', () => {
    expect(methodsToLearn(undefined, set('Create', 'Start', 'Checkpoint'), undefined)).toBeUndefined();
    expect(methodsToLearn(undefined, set(RESTORE_METHOD, 'Start'), undefined)).toBeUndefined();
    expect(methodsToLearn(undefined, set('Create', RESTORE_METHOD, 'Start'), undefined)).toBeUndefined();
    expect(methodsToLearn(undefined, set('Create', 'Delete', 'Shutdown'), undefined)).toBeUndefined();
  });
});

describe('written and read back', () => {
  const data = Buffer.from('v8 data \x00\x01\x02', 'latin1');

  test('round trip: a 0700 directory, a 0600 file with the build id and the methods in its header', () => {
    const cacheDir = path.join(dir, 'cache');
    const file = writeLearnedCache(cacheDir, BUNDLE, ID, ['Create', 'Start'], data);
    expect(file).toBe(learnedCachePath(cacheDir, BUNDLE, ID));
    expect(fs.statSync(cacheDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'latin1').startsWith(`${LEARNED_MAGIC} ${ID} Create,Start\n`)).toBe(true);
    expect(readLearnedCache(file, ID)).toEqual({ data, methods: ['Create', 'Start'] });
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(file)]); // no temporary file left
  });

  test(`only the newest ${KEPT_BUILDS} builds' caches of a bundle are kept; other files are left alone`, () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'shim-daemon.js.cache'), 'a dist cache, not ours to remove');
    fs.writeFileSync(path.join(dir, 'other.js.x.v8-1.cache'), 'another bundle');
    const files = Array.from({ length: KEPT_BUILDS + 2 }, (_, i) => {
      const f = writeLearnedCache(dir, BUNDLE, `build${i}`, ['Create', 'Start'], data);
      fs.utimesSync(f, 1000 + i, 1000 + i);
      return f;
    });
    const left = fs.readdirSync(dir);
    expect(left).toEqual(expect.arrayContaining(['shim-daemon.js.cache', 'other.js.x.v8-1.cache']));
    const kept = files.filter((f) => left.includes(path.basename(f)));
    // The newest (last written) is always kept; in all KEPT_BUILDS remain.
    expect(kept).toHaveLength(KEPT_BUILDS);
    expect(kept).toContain(files[files.length - 1]);
  });

  const refused = (prepare: (file: string) => void, reason: RegExp) => {
    const file = writeLearnedCache(dir, BUNDLE, ID, ['Create', 'Start'], data);
    prepare(file);
    const why: string[] = [];
    expect(readLearnedCache(file, ID, (r) => why.push(r))).toBeUndefined();
    expect(why.join('\n')).toMatch(reason);
  };

  test('a cache of another build is not used', () => {
    const file = writeLearnedCache(dir, BUNDLE, ID, ['Create'], data);
    const why: string[] = [];
    expect(readLearnedCache(file, 'another-build', (r) => why.push(r))).toBeUndefined();
    expect(why.join()).toMatch(/not a learned cache of build another-build/);
  });
  test('a file writable by group or others is not used', () => refused((f) => fs.chmodSync(f, 0o622), /writable by group or others \(mode 622\)/));
  test('a directory writable by others is not used', () => refused(() => fs.chmodSync(dir, 0o777), /writable by group or others \(mode 777\)/));
  test('a file owned by another user is not used', () => {
    if (process.geteuid?.() !== 0) return; // chown needs root, as the shim runs
    refused((f) => fs.chownSync(f, 65534, 65534), /owned by uid 65534/);
  });
  test('a symlink to a cache is not followed', () => refused((f) => {
    const real = `${f}.real`;
    fs.renameSync(f, real);
    fs.symlinkSync(real, f);
  }, /ELOOP/));
  test(`a file larger than ${MAX_LEARNED_CACHE_BYTES} bytes is not read`, () => refused((f) => fs.truncateSync(f, MAX_LEARNED_CACHE_BYTES + 1), /more than/));
  test('a header that is not ours, or names that are not method names, is not used', () => {
    for (const text of ['garbage without a newline', `${LEARNED_MAGIC} ${ID}\nx`, `${LEARNED_MAGIC} ${ID} Create,../x\nx`, `${LEARNED_MAGIC} ${ID} Create\n`]) {
      const file = learnedCachePath(dir, BUNDLE, ID);
      fs.writeFileSync(file, text, { mode: 0o600 });
      expect(readLearnedCache(file, ID)).toBeUndefined();
    }
  });
  test('a missing cache is quietly absent', () => {
    const why: string[] = [];
    expect(readLearnedCache(learnedCachePath(dir, BUNDLE, ID), ID, (r) => why.push(r))).toBeUndefined();
    expect(why).toEqual([]);
  });
  test('writing into a directory others can write is refused, and writes nothing', () => {
    fs.chmodSync(dir, 0o777);
    expect(() => writeLearnedCache(dir, BUNDLE, ID, ['Create'], data)).toThrow(/writable by group or others/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('in a real node process', () => {
  let loader: string;
  let bundle: string;
  beforeEach(() => {
    loader = path.join(dir, 'load.js');
    // Loads argv[2] with the learned cache in argv[3], calls its work(), and learns as the
    // daemon does at its exit; prints how the cache went and what was written.
    buildSync({
      bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'error', outfile: loader,
      stdin: {
        resolveDir: path.join(root, 'src/loader'), loader: 'ts', sourcefile: 'load.ts',
        contents: `import { loadBundleWith } from './code-cache';
          import { cacheLearner } from './learned-cache';
          const notUsed: string[] = [];
          const loaded = loadBundleWith(process.argv[2], { learnedCacheDir: process.argv[3], why: (r) => notUsed.push(r) });
          const answer = (loaded.exports as { work(): number }).work();
          const wrote = cacheLearner(loaded, process.argv[3], notUsed).learn(new Set(process.argv[4].split(',')));
          console.log(JSON.stringify({ answer, cache: loaded.report.cache, notUsed, wrote: wrote ? wrote.methods : null }));`,
      },
    });
    // A bundle whose work() calls functions that loading does not compile.
    bundle = path.join(dir, 'b.js');
    const fns = Array.from({ length: 200 }, (_, i) => `function f${i}(x) { return x + ${i}; }`).join('\n');
    fs.writeFileSync(bundle, `${BUNDLE_WRAPPER_START}'use strict';\n${fns}\nexports.work = () => { let s = 0; for (let i = 0; i < 200; i++) s = eval('f' + i)(s); return s; };${BUNDLE_WRAPPER_END}\n${BUILD_ID_MARK}${ID}\n`);
  });
  const run = (methods: string, flags: string[] = []) =>
    JSON.parse(execFileSync(process.execPath, [...flags, loader, bundle, path.join(dir, 'cache'), methods], { encoding: 'utf8' })) as { answer: number; cache: string; notUsed: string[]; wrote: string[] | null };

  test('the first run writes a cache holding what it ran; the next uses it and writes only when it serves more', () => {
    const first = run('Create,Start');
    expect(first).toMatchObject({ answer: 19900, cache: 'absent', wrote: ['Create', 'Start'] });
    const file = learnedCachePath(path.join(dir, 'cache'), bundle, ID);
    // More than a cache of the loaded bundle alone: the 200 functions work() compiled are in it.
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(4000);
    expect(run('Create,Start')).toMatchObject({ answer: 19900, cache: 'learned', wrote: null });
    expect(run('Create,Start,Exec')).toMatchObject({ answer: 19900, cache: 'learned', wrote: ['Create', 'Exec', 'Start'] });
    expect(readLearnedCache(file, ID)?.methods).toEqual(['Create', 'Exec', 'Start']);
  });

  test('a learned cache V8 refuses costs the cache, not the run, and is written again', () => {
    run('Create,Start', ['--no-lazy']); // made under other V8 flags: this node refuses it
    const r = run('Create,Start');
    expect(r).toMatchObject({ answer: 19900, cache: 'rejected', wrote: ['Create', 'Start'] });
    expect(r.notUsed.join()).toMatch(/V8 refused the learned cache/);
    expect(run('Create,Start')).toMatchObject({ cache: 'learned', wrote: null });
  });

  test('a planted unsafe cache is not used and the bundle still runs', () => {
    run('Create,Start');
    fs.chmodSync(learnedCachePath(path.join(dir, 'cache'), bundle, ID), 0o666);
    const r = run('Create,Start');
    expect(r).toMatchObject({ answer: 19900, cache: 'absent' });
    expect(r.notUsed.join()).toMatch(/writable by group or others/);
  });
});
