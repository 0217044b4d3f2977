// Bundles the two programs with esbuild (one file loads faster than hundreds of modules, which
// matters most for the shim on containerd's critical path) and writes a V8 code cache for each
// bundle (src/loader/code-cache.ts). dist/ is laid out exactly as `make install` copies it to
// $PREFIX/lib/ferry, so the launchers find everything the same way in both places:
//   dist/shim-entry.js   what shim/containerd-shim-ferry-v2 runs: loads shim.js, calls main()
//   dist/shim.js         the shim's actions (src/shim-main.ts): start, delete, -v; small, because
//                        containerd waits for each of them
//   dist/shim-daemon.js  the shim daemon (src/daemon/daemon.ts): task service, ttrpc
//   dist/grpc-js.js      @grpc/grpc-js, loaded by the daemon on its first gRPC connection
//   dist/ferry-entry.js  what shim/ferry runs: loads ferry.js, calls main()
//   dist/ferry.js        the `ferry` command (src/ferry/main.ts)
//   dist/*.js.cache      V8 code cache per bundle, made with the launcher's node flags
//   dist/ferry_sys.node  the N-API addon (build/Release), found beside the bundles
// Native addons are never bundled: packages that load one (zstd-napi) stay external and are
// resolved from node_modules (make install copies them).
'use strict';
const esbuild = require('esbuild');
const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const buildId = crypto.randomBytes(12).toString('hex');
const footer = { js: `//# ferry-build=${buildId}` };
// CommonJS's function wrapper, exactly as src/loader/code-cache.ts's BUNDLE_WRAPPER_START/END.
const BUNDLE_WRAPPER_START = '(function (exports, require, module, __filename, __dirname) {';
const BUNDLE_WRAPPER_END = '\n})';
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: 'linked', minify: false, logLevel: 'warning', absWorkingDir: root };

/** The node flags the shim's launcher runs node with (its `node_flags='…'` line). */
function launcherNodeFlags() {
  const text = fs.readFileSync(path.join(root, 'shim', 'containerd-shim-ferry-v2'), 'utf8');
  const m = /^node_flags='([^']*)'$/m.exec(text);
  if (!m) throw new Error('shim/containerd-shim-ferry-v2: no node_flags line');
  return m[1].split(/\s+/).filter(Boolean);
}

/**
 * Rewrites every non-ASCII UTF-16 unit of a bundle as a \\uXXXX escape. V8 keeps a bundle's source
 * for as long as the program runs (lazy compilation), and one non-ASCII character makes that a
 * two-byte string: the daemon's 566 KB bundle took 1.1 MB of every daemon's heap because of three
 * em dashes in comments. esbuild already escapes strings, templates and regular expressions
 * (charset ascii); what is left is in comments, and an escape means the same character anywhere.
 */
function asciiOnly(text) {
  return text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * esbuild turns each file's `import * as fs from 'node:fs'` into its own `__toESM(require(…))`:
 * a new object with one getter closure per property of the module, in every importing file
 * (the daemon: 18 copies of fs, 21 of path — ~2,400 closures and their contexts, ~0.35 MB of
 * every daemon's heap, and the time to make them). Memoise the wrapper per module object: each
 * importer gets an identical getter-only object, so sharing one changes nothing it can observe.
 * Left as it is (with a note) if esbuild's helper ever looks different.
 */
function shareEsmWrappers(file, text) {
  const helperEnd = /^var __toESM = \(mod, isNodeMode, target\) => [^]*?\n\)\);\n/m.exec(text);
  if (!helperEnd) {
    if (text.includes('__toESM(')) console.warn(`bundle: ${path.basename(file)}: esbuild's __toESM helper not recognised, wrappers not shared`);
    return text;
  }
  // On the helper's last line, so the source map's line numbers still hold.
  const at = helperEnd.index + helperEnd[0].length - 1;
  const memo = ' var __toESM = ((uncached, seen) => (mod, isNodeMode) => {' +
    ' if (mod == null || (typeof mod !== "object" && typeof mod !== "function")) return uncached(mod, isNodeMode);' +
    ' let w = seen.get(mod); if (!w) seen.set(mod, w = [void 0, void 0]);' +
    ' return w[isNodeMode ? 1 : 0] ??= uncached(mod, isNodeMode);' +
    ' })(__toESM, new WeakMap()); // one wrapper per module object (contrib/bundle.js)';
  return text.slice(0, at) + memo + text.slice(at);
}

/** Writes beside and renames: a running program maps its bundle (below), and may map this one. */
function writeReplacing(file, data) {
  fs.writeFileSync(`${file}.tmp`, data);
  fs.renameSync(`${file}.tmp`, file);
}

// The entries: one source, built once per program.
for (const [outfile, program, name] of [['dist/shim-entry.js', 'shim.js', 'containerd-shim-ferry-v2'], ['dist/ferry-entry.js', 'ferry.js', 'ferry']]) {
  esbuild.buildSync({
    ...common, sourcemap: false, entryPoints: ['src/loader/entry.ts'], outfile,
    define: { FERRY_PROGRAM: JSON.stringify(program), FERRY_NAME: JSON.stringify(name) },
  });
}

// V8 takes a code cache only in a process whose V8 flags hash as they did where it was made: each
// bundle's cache is made by a node started with the flags of the program that loads it (`flags`),
// which produce-cache.ts, like the program's entry, sets back to V8's defaults first thing
// (src/loader/launcher-flags.ts), so the cache is made in the flag state it is used in.
const shimFlags = launcherNodeFlags();
const bundles = [
  // start/delete use all of their little code: compile it all into the cache.
  { entry: 'src/shim-main.ts', out: 'shim.js', eager: true, external: ['zstd-napi'], flags: shimFlags },
  // grpc-js is its own bundle, loaded on the first gRPC connection (src/protocol/grpc/server.ts).
  { entry: 'src/daemon/daemon.ts', out: 'shim-daemon.js', eager: process.env.FERRY_DAEMON_CACHE === 'eager', external: ['@grpc/grpc-js', 'zstd-napi'], flags: shimFlags },
  { entry: 'src/protocol/grpc/grpc-js-bundle.ts', out: 'grpc-js.js', eager: false, flags: shimFlags },
  // shim/ferry runs node without flags (and `node shim/ferry` is how tests run it): a cache made
  // under the shim's flags was rejected on every `ferry` start (~25 ms of CPU compiling instead).
  // Eager: a restore or checkpoint runs much of the bundle, and a 2.2 MB cache of all of it cost
  // 6-15 ms less CPU per command than the lazy one (whose functions compile at first call);
  // `ferry --version` pays ~20 ms more for reading it (docs/benchmarks.md, Round 4: ferry import/export).
  { entry: 'src/ferry/main.ts', out: 'ferry.js', eager: true, external: ['zstd-napi'], flags: [] },
];
// Each bundle is CommonJS's function wrapper around esbuild's output, the wrapper in the file
// (banner and footer, which esbuild's source map accounts for): so the file is exactly the script
// that src/loader/code-cache.ts compiles, and the loader can hand V8 a mapping of the file as the
// source instead of a copy on the heap of every process (native mapAsciiFile). Files are written
// beside and renamed, never rewritten in place: a running program has its bundles mapped, and a
// mapped file truncated under it faults it with SIGBUS.
for (const b of bundles) {
  const outfile = path.join(dist, b.out);
  const result = esbuild.buildSync({
    ...common, entryPoints: [b.entry], outfile, external: b.external, write: false,
    banner: { js: BUNDLE_WRAPPER_START }, footer: { js: `${BUNDLE_WRAPPER_END}\n${footer.js}` },
  });
  for (const out of result.outputFiles) {
    if (out.path === outfile) writeReplacing(outfile, shareEsmWrappers(outfile, asciiOnly(out.text)));
    else writeReplacing(out.path, out.contents);
  }
}
// esbuild keeps `import('node:x')` as a real dynamic import, and V8 rejects those in a script
// compiled from a code cache (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): import Node's modules
// statically. (Dynamic imports of our own modules become esbuild's lazy initialisers: fine.)
for (const b of bundles) {
  const text = fs.readFileSync(path.join(dist, b.out), 'utf8');
  const m = /\bimport\(\s*["'](node:)?[a-z_/]+["']\s*\)/.exec(text);
  if (m) throw new Error(`dist/${b.out}: ${m[0]} of a Node module fails under the code-cache loader; import it statically (src/loader/code-cache.ts)`);
}
// Beside, then renamed: running daemons have the old addon mapped, and rewriting that file in
// place (copyFileSync truncates it) killed them with SIGBUS on their next call into it — seen when
// a build ran beside an e2e test. A rename leaves their mapping on the old inode.
fs.copyFileSync(path.join(root, 'build', 'Release', 'ferry_sys.node'), path.join(dist, 'ferry_sys.node.tmp'));
fs.renameSync(path.join(dist, 'ferry_sys.node.tmp'), path.join(dist, 'ferry_sys.node'));

const producer = path.join(root, 'build', 'produce-cache.js');
esbuild.buildSync({ ...common, sourcemap: false, entryPoints: ['src/loader/produce-cache.ts'], outfile: producer });
for (const b of bundles) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // the shim's launcher unsets it; V8 flags in it would change the flag hash
  execFileSync(process.execPath, [...b.flags, producer, path.join(dist, b.out), b.eager ? 'eager' : 'lazy'], { env, stdio: 'inherit' });
}
