// Loads one of ferry's esbuild bundles (dist/*.js) as a CommonJS module, compiled from V8 code
// cache when `make build` left one beside it. Node 20 has no module.enableCompileCache(), and
// compiling is what a Node start spends most of its own time on: the shim's daemon bundle takes
// ~45 ms of CPU to compile from source here and a few ms to deserialise (docs/benchmarks.md).
//
// A cache file (`<bundle>.cache`) is `FERRYCC1 <build id>\n` followed by V8's cached data.
// The build id is a random token contrib/bundle.js writes into both the bundle's last line
// and its cache: V8 itself checks only the source's length (and its own version and flags),
// so the id is what keeps a cache from ever being used with another build of the same size.
// A missing, foreign or rejected cache costs time, never correctness: the source is compiled.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { mapAsciiFile } from '../sys/native';
import { learnedCachePath, readLearnedCache } from './learned-cache';

export const CACHE_MAGIC = 'FERRYCC1';
/** The comment contrib/bundle.js appends to every bundle: `//# ferry-build=<id>`. */
export const BUILD_ID_MARK = '//# ferry-build=';

/** How the last loadBundle went (for `--debug`-style diagnostics and the tests). */
export interface LoadReport {
  file: string;
  /** used: dist/'s cache; learned: the learned cache (src/loader/learned-cache.ts). */
  cache: 'used' | 'learned' | 'absent' | 'foreign' | 'rejected';
  /** True when V8 compiled a mapping of the file (no copy of the source on the heap). */
  mapped: boolean;
}

export const loadReports: LoadReport[] = [];

/** The build id in a bundle's source, or '' when it has none. */
export function buildIdOf(source: string): string {
  const at = source.lastIndexOf(BUILD_ID_MARK);
  if (at < 0) return '';
  const start = at + BUILD_ID_MARK.length;
  const end = source.indexOf('\n', start);
  return source.slice(start, end < 0 ? undefined : end).trim();
}

/**
 * CommonJS's function wrapper, so the bundle sees exports/require/module as under require().
 * contrib/bundle.js writes it into each bundle file (the same two strings), so the file is the
 * script itself; a file without it (a bundle not made by contrib/bundle.js) is wrapped here.
 */
export const BUNDLE_WRAPPER_START = '(function (exports, require, module, __filename, __dirname) {';
export const BUNDLE_WRAPPER_END = '\n})';

export function wrapCommonJs(source: string): string {
  return `${BUNDLE_WRAPPER_START}${source}${BUNDLE_WRAPPER_END}`;
}

/** The script V8 compiles for a bundle's text: the text itself when it carries the wrapper. */
export function scriptSourceOf(text: string): string {
  return text.startsWith(BUNDLE_WRAPPER_START) ? text : wrapCommonJs(text);
}

/**
 * A bundle's text, as a string over a mapping of the file when the native layer can make one
 * (src/sys/native.ts mapAsciiFile): V8 keeps a script's source for the program's life, and a
 * mapped source is page cache shared by every shim daemon instead of ~0.75 MB of each one's heap
 * (docs/benchmarks.md, Round 5). Read into the heap when the addon is not there (a loader bundled
 * outside dist/, as in tests) or the file is not pure ASCII.
 */
function bundleText(file: string): { text: string; mapped: boolean } {
  let text: string | null = null;
  try {
    text = mapAsciiFile(file);
  } catch {
    /* no addon beside the bundle, or the mapping failed: read it (errors surface there) */
  }
  return text === null ? { text: fs.readFileSync(file, 'utf8'), mapped: false } : { text, mapped: true };
}

/** The V8 data in a cache file meant for `buildId`, or undefined. */
export function cachedDataFor(cacheFile: string, buildId: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  const header = `${CACHE_MAGIC} ${buildId}\n`;
  if (!buildId || data.length <= header.length || data.toString('latin1', 0, header.length) !== header) return undefined;
  return data.subarray(header.length);
}

/** Runs `file` (a CommonJS bundle) and returns its module.exports. */
export function loadBundle(file: string): unknown {
  return loadBundleWith(file).exports;
}

export interface LoadedBundle {
  exports: unknown;
  report: LoadReport;
  /** The compiled script: its createCachedData() holds what has been compiled so far. */
  script: vm.Script;
  buildId: string;
  /** What the learned cache that was used had recorded (src/loader/learned-cache.ts). */
  learnedMethods?: string[];
}

/**
 * loadBundle, and with `learnedCacheDir` the learned cache in that directory is preferred to
 * dist/'s (src/loader/learned-cache.ts); `why` hears why one that is there was not used.
 */
export function loadBundleWith(file: string, opts: { learnedCacheDir?: string; why?: (reason: string) => void } = {}): LoadedBundle {
  const { text, mapped } = bundleText(file);
  const buildId = buildIdOf(text);
  const learned = opts.learnedCacheDir && buildId ? readLearnedCache(learnedCachePath(opts.learnedCacheDir, file, buildId), buildId, opts.why) : undefined;
  const cachedData = learned?.data ?? cachedDataFor(`${file}.cache`, buildId);
  // A wrapped file is compiled as it is: the mapped string itself is the source V8 keeps. An
  // unwrapped one is copied by the wrapper (its mapping, if any, then goes unused).
  const source = scriptSourceOf(text);
  const script = new vm.Script(source, { filename: file, cachedData });
  const cache: LoadReport['cache'] = cachedData === undefined
    ? (fs.existsSync(`${file}.cache`) ? 'foreign' : 'absent')
    : (script.cachedDataRejected ? 'rejected' : learned ? 'learned' : 'used');
  if (learned && script.cachedDataRejected) opts.why?.(`V8 refused the learned cache of ${file}`);
  const report: LoadReport = { file, cache, mapped: mapped && source === text };
  loadReports.push(report);
  const module = { exports: {} as unknown, filename: file, id: file, loaded: false };
  const fn = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: unknown, f: string, d: string) => void;
  fn.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file));
  module.loaded = true;
  return { exports: module.exports, report, script, buildId, learnedMethods: cache === 'learned' ? learned?.methods : undefined };
}
