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
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: 'linked', minify: false, logLevel: 'warning', absWorkingDir: root };

/** The node flags the shim's launcher runs node with (its `node_flags='…'` line). */
function launcherNodeFlags() {
  const text = fs.readFileSync(path.join(root, 'shim', 'containerd-shim-ferry-v2'), 'utf8');
  const m = /^node_flags='([^']*)'$/m.exec(text);
  if (!m) throw new Error('shim/containerd-shim-ferry-v2: no node_flags line');
  return m[1].split(/\s+/).filter(Boolean);
}

// The entries: one source, built once per program.
for (const [outfile, program, name] of [['dist/shim-entry.js', 'shim.js', 'containerd-shim-ferry-v2'], ['dist/ferry-entry.js', 'ferry.js', 'ferry']]) {
  esbuild.buildSync({
    ...common, sourcemap: false, entryPoints: ['src/loader/entry.ts'], outfile,
    define: { FERRY_PROGRAM: JSON.stringify(program), FERRY_NAME: JSON.stringify(name) },
  });
}

const bundles = [
  // start/delete use all of their little code: compile it all into the cache.
  { entry: 'src/shim-main.ts', out: 'shim.js', eager: true },
  // grpc-js is its own bundle, loaded on the first gRPC connection (src/protocol/grpc/server.ts).
  { entry: 'src/daemon/daemon.ts', out: 'shim-daemon.js', eager: process.env.FERRY_DAEMON_CACHE === 'eager', external: ['@grpc/grpc-js', 'zstd-napi'] },
  { entry: 'src/protocol/grpc/grpc-js-bundle.ts', out: 'grpc-js.js', eager: false },
  { entry: 'src/ferry/main.ts', out: 'ferry.js', eager: false, external: ['zstd-napi'] },
];
for (const b of bundles) {
  esbuild.buildSync({ ...common, entryPoints: [b.entry], outfile: path.join('dist', b.out), external: b.external, footer });
}
// esbuild keeps `import('node:x')` as a real dynamic import, and V8 rejects those in a script
// compiled from a code cache (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): import Node's modules
// statically. (Dynamic imports of our own modules become esbuild's lazy initialisers: fine.)
for (const b of bundles) {
  const text = fs.readFileSync(path.join(dist, b.out), 'utf8');
  const m = /\bimport\(\s*["'](node:)?[a-z_/]+["']\s*\)/.exec(text);
  if (m) throw new Error(`dist/${b.out}: ${m[0]} of a Node module fails under the code-cache loader; import it statically (src/loader/code-cache.ts)`);
}
fs.copyFileSync(path.join(root, 'build', 'Release', 'ferry_sys.node'), path.join(dist, 'ferry_sys.node'));

const producer = path.join(root, 'build', 'produce-cache.js');
esbuild.buildSync({ ...common, sourcemap: false, entryPoints: ['src/loader/produce-cache.ts'], outfile: producer });
const flags = launcherNodeFlags();
for (const b of bundles) {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // the launcher unsets it too
  execFileSync(process.execPath, [...flags, producer, path.join(dist, b.out), b.eager ? 'eager' : 'lazy'], { env, stdio: 'inherit' });
}
