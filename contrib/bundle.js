// Bundles the two programs with esbuild: one file loads faster than hundreds of modules, which
// matters most for the shim on containerd's critical path.
//   dist/shim.js   containerd-shim-ferry-v2 (src/shim-main.ts). Dynamic import()s stay lazy:
//                  esbuild turns them into on-demand module initialisers, so `start` never
//                  initialises grpc-js or winston.
//   dist/ferry.js  the `ferry` command (src/ferry/main.ts), exporting main().
// Native addons (.node files) are never bundled: packages that load one stay external.
'use strict';
const esbuild = require('esbuild');
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: 'linked', minify: false, logLevel: 'warning' };
esbuild.buildSync({ ...common, entryPoints: ['src/shim-main.ts'], outfile: 'dist/shim.js', external: ['zstd-napi'] });
esbuild.buildSync({ ...common, entryPoints: ['src/ferry/main.ts'], outfile: 'dist/ferry.js', external: ['zstd-napi'] });
