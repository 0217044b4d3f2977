// The shim daemon's learned code cache: V8 code cache written by a daemon at its exit, holding the
// functions it compiled while it served containerd, for the daemons started after it.
//
// Why: the daemon bundle's cache in dist/ is made at build time by loading the bundle, so it
// holds only what loading compiles. Every function a call runs is compiled at its first call, in
// every daemon: a new daemon's first `ctr task exec` cost it 4-5 ms more CPU than its later ones,
// and the Kill/Delete/Shutdown of `ctr task rm -f` paid the same way. A cache of all the bundle
// (V8's --no-lazy) removes that but is 5x larger, and reading it made every start slower
// (docs/benchmarks.md, Round 9). What a daemon has compiled by its exit is what daemons use.
//
// The file is code V8 runs without checking more than its own version, flags and the source's
// length, so it is read only from a directory and file owned by this user that no one else can
// write, never through a symlink, bounded in size, and with the bundle's build id in its header
// (src/loader/code-cache.ts says why V8's check is not enough). Anything else is not used: the
// daemon loads dist/'s cache instead, and the cost of a bad or missing learned cache is time.
//
// Which daemon writes: one that served a method (task API call) the learned cache of this build
// does not record yet; the header records the union with what the cache it started from
// recorded, since it holds those functions too, and a daemon writes only a union that covers
// what the file records now. So a build's cache is rewritten at most once per method name.
// A daemon that checkpointed or restored does not write: their code would make every daemon
// read a larger cache for what few containers do.
//
// FERRY_CODE_CACHE_DIR (containerd passes its environment on to its shims) moves the directory;
// empty turns the learned cache off.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoadedBundle, LoadReport } from './code-cache';

export const LEARNED_MAGIC = 'FERRYLC1';
export const DEFAULT_LEARNED_CACHE_DIR = '/var/cache/ferry';
/** A learned cache of the daemon bundle is ~0.3 MB; anything near this bound is not ours. */
export const MAX_LEARNED_CACHE_BYTES = 16 << 20;
const MAX_HEADER_BYTES = 4096;
/** The name a Create that restores from a checkpoint is served under. */
export const RESTORE_METHOD = 'Create(restore)';
/** The methods whose daemons do not write (see above). */
export const UNLEARNED_METHODS: ReadonlySet<string> = new Set(['Checkpoint', RESTORE_METHOD]);
const METHOD_NAME = /^[A-Za-z][A-Za-z()]{0,63}$/;

/** The directory from the environment; null when the learned cache is off. */
export function learnedCacheDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env.FERRY_CODE_CACHE_DIR ?? DEFAULT_LEARNED_CACHE_DIR;
  return dir !== '' && path.isAbsolute(dir) ? dir : null;
}

/** Where the learned cache of `bundle` (a dist/*.js path) for `buildId` and this V8 lives. */
export function learnedCachePath(dir: string, bundle: string, buildId: string): string {
  // V8's version in the name: two nodes on one host keep one cache each instead of rejecting
  // (and rewriting) each other's.
  return path.join(dir, `${path.basename(bundle)}.${buildId}.v8-${process.versions.v8}.cache`);
}

export interface LearnedCache {
  data: Buffer;
  /** The methods the daemons that wrote it had served. */
  methods: string[];
}

/** Why a directory or file may not hold code this process runs; undefined when it may. */
function unsafeBecause(st: fs.Stats, kind: 'directory' | 'file'): string | undefined {
  const uid = process.geteuid?.() ?? 0;
  if (kind === 'directory' ? !st.isDirectory() : !st.isFile()) return `not a ${kind}`;
  if (st.uid !== uid) return `owned by uid ${st.uid}, not ${uid}`;
  if ((st.mode & 0o022) !== 0) return `writable by group or others (mode ${(st.mode & 0o777).toString(8)})`;
  return undefined;
}

/** Parses `FERRYLC1 <build id> <method,…>\n`; undefined unless it is for `buildId`. */
export function parseLearnedHeader(data: Buffer, buildId: string): { methods: string[]; length: number } | undefined {
  const nl = data.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (nl < 0 || !buildId) return undefined;
  const fields = data.toString('latin1', 0, nl).split(' ');
  if (fields.length !== 3 || fields[0] !== LEARNED_MAGIC || fields[1] !== buildId) return undefined;
  const methods = fields[2] === '' ? [] : fields[2].split(',');
  if (!methods.every((m) => METHOD_NAME.test(m))) return undefined;
  return { methods, length: nl + 1 };
}

/**
 * Reads the learned cache at `file` for `buildId`; undefined when there is none, or it is not
 * safe to run (see above) or not for this build. `why` is told the reason for a file that is
 * there but not used.
 */
export function readLearnedCache(file: string, buildId: string, why?: (reason: string) => void): LearnedCache | undefined {
  let fd: number;
  try {
    const dirProblem = unsafeBecause(fs.lstatSync(path.dirname(file)), 'directory');
    if (dirProblem) { why?.(`${path.dirname(file)}: ${dirProblem}`); return undefined; }
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') why?.(`${file}: ${(err as Error).message}`);
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    const problem = unsafeBecause(st, 'file') ?? (st.size > MAX_LEARNED_CACHE_BYTES ? `${st.size} bytes, more than ${MAX_LEARNED_CACHE_BYTES}` : undefined);
    if (problem) { why?.(`${file}: ${problem}`); return undefined; }
    const data = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < data.length) {
      const n = fs.readSync(fd, data, got, data.length - got, got);
      if (n === 0) break;
      got += n;
    }
    const header = parseLearnedHeader(data.subarray(0, got), buildId);
    if (!header || header.length >= got) { why?.(`${file}: not a learned cache of build ${buildId}`); return undefined; }
    return { data: data.subarray(header.length, got), methods: header.methods };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The methods to record when a daemon that served `served` should write the cache, or
 * undefined when it should not. `loaded`: what the cache it started from recorded (undefined:
 * it started from none, or V8 refused it); its functions are in what this daemon writes, so the
 * new header is `loaded` and `served`. `current`: what the file records now, which another daemon
 * may have rewritten since: a daemon writes only what covers it, so a long-lived daemon that
 * started from an older cache does not take back what others added.
 */
export function methodsToLearn(loaded: readonly string[] | undefined, served: ReadonlySet<string>, current: readonly string[] | undefined): string[] | undefined {
  if (!served.has('Create') || !served.has('Start')) return undefined;
  for (const m of served) if (UNLEARNED_METHODS.has(m) || !METHOD_NAME.test(m)) return undefined;
  const next = new Set([...(loaded ?? []), ...served]);
  if (current && (current.length >= next.size || !current.every((m) => next.has(m)))) return undefined;
  return [...next].sort();
}

/**
 * Writes the learned cache of `bundle` in `dir` (beside, then renamed: a reader sees the old
 * file or the new one) and returns its path.
 */
export function writeLearnedCache(dir: string, bundle: string, buildId: string, methods: readonly string[], data: Buffer): string {
  const file = learnedCachePath(dir, bundle, buildId);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dirProblem = unsafeBecause(fs.lstatSync(dir), 'directory');
  if (dirProblem) throw new Error(`${dir}: ${dirProblem}`);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${LEARNED_MAGIC} ${buildId} ${methods.join(',')}\n`, null, 'latin1');
    fs.writeSync(fd, data);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  removeOldCaches(dir, bundle);
  return file;
}

/** How many learned caches of one bundle a directory keeps (builds and nodes side by side). */
export const KEPT_BUILDS = 4;

/** Every `make build` has a new build id: keep the newest KEPT_BUILDS caches of this bundle. */
function removeOldCaches(dir: string, bundle: string): void {
  const prefix = `${path.basename(bundle)}.`;
  const caches = fs.readdirSync(dir)
    .filter((n) => n.startsWith(prefix) && n.includes('.v8-') && n.endsWith('.cache'))
    .map((n) => ({ n, st: fs.lstatSync(path.join(dir, n)) }))
    .filter(({ st }) => st.isFile())
    .sort((a, b) => b.st.mtimeMs - a.st.mtimeMs);
  for (const { n } of caches.slice(KEPT_BUILDS)) fs.rmSync(path.join(dir, n), { force: true });
}

/** What the daemon is given to learn with at its exit. */
export interface CacheLearner {
  /** How its bundle's cache went at load. */
  cache: LoadReport['cache'];
  /** Why a learned cache that was there was not used (for the daemon's log). */
  notUsed: string[];
  /**
   * Writes the learned cache when `served` (the methods the daemon served) adds to it; returns
   * what was written, or undefined when nothing was. Throws what writing threw.
   */
  learn(served: ReadonlySet<string>): { file: string; methods: string[]; bytes: number } | undefined;
}

export function cacheLearner(loaded: LoadedBundle, dir: string, notUsed: string[]): CacheLearner {
  return {
    cache: loaded.report.cache,
    notUsed,
    learn(served) {
      if (!loaded.buildId) return undefined;
      // The usual exit: nothing served that the cache it started from lacks; no need to read the file.
      const started = loaded.learnedMethods;
      if (started && [...served].every((m) => started.includes(m))) return undefined;
      // A file V8 refused (made under other flags) is replaced whatever it records.
      const current = loaded.report.cache === 'rejected' ? undefined
        : readLearnedCache(learnedCachePath(dir, loaded.report.file, loaded.buildId), loaded.buildId)?.methods;
      const methods = methodsToLearn(loaded.learnedMethods, served, current);
      if (!methods) return undefined;
      const data = loaded.script.createCachedData();
      const file = writeLearnedCache(dir, loaded.report.file, loaded.buildId, methods, data);
      return { file, methods, bytes: data.length };
    },
  };
}
