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

export const CACHE_MAGIC = 'FERRYCC1';
/** The comment contrib/bundle.js appends to every bundle: `//# ferry-build=<id>`. */
export const BUILD_ID_MARK = '//# ferry-build=';

/** How the last loadBundle went (for `--debug`-style diagnostics and the tests). */
export interface LoadReport {
  file: string;
  cache: 'used' | 'absent' | 'foreign' | 'rejected';
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

/** CommonJS's function wrapper, so the bundle sees exports/require/module as under require(). */
export function wrapCommonJs(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
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
  const source = fs.readFileSync(file, 'utf8');
  const buildId = buildIdOf(source);
  const cachedData = cachedDataFor(`${file}.cache`, buildId);
  const script = new vm.Script(wrapCommonJs(source), { filename: file, cachedData });
  const cache: LoadReport['cache'] = cachedData === undefined
    ? (fs.existsSync(`${file}.cache`) ? 'foreign' : 'absent')
    : (script.cachedDataRejected ? 'rejected' : 'used');
  loadReports.push({ file, cache });
  const module = { exports: {} as unknown, filename: file, id: file, loaded: false };
  const fn = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: unknown, f: string, d: string) => void;
  fn.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file));
  module.loaded = true;
  return module.exports;
}
