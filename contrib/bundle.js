// Bundles the shim into dist/ferry.js with esbuild: one file loads faster than hundreds of
// modules on containerd's critical path. Dynamic import()s stay lazy: esbuild turns them into
// on-demand module initialisers, so `start` never initialises grpc-js or winston.
'use strict';
const esbuild = require('esbuild');
esbuild.buildSync({
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: 'dist/ferry.js',
  sourcemap: 'linked',
  minify: false,
  logLevel: 'warning',
});
