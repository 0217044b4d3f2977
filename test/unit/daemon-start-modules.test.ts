// The shim daemon's bundle loads, at start, no Node builtin that only some paths need
// (src/loader/on-first-use.ts): each is compiled on its first require and the daemon starts on
// containerd's critical path. Run against the built bundle (dist/, `make build`), as the
// launcher loads it, in a fresh node compared with a bare one.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '../..');
const bundle = path.join(root, 'dist', 'shim-daemon.js');
const onFirstUse = ['child_process', 'worker_threads', 'zlib', 'tty', 'v8'];

/** The builtins (NativeModule entries of process.moduleLoadList) a node process has loaded after `script`. */
function builtinsAfter(script: string): Set<string> {
  const out = execFileSync(process.execPath, ['-e', `${script};
    console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13))))`],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return new Set(JSON.parse(out) as string[]);
}

test('loading the daemon bundle compiles none of the builtins it loads on first use', () => {
  expect(fs.existsSync(bundle)).toBe(true); // `make build` first
  const bare = builtinsAfter('0');
  // The bundle file is CommonJS's function wrapper (contrib/bundle.js): run it as the loader does.
  const daemon = builtinsAfter(`const f = require('vm').runInThisContext(require('fs').readFileSync(${JSON.stringify(bundle)}, 'utf8'));
    const m = { exports: {} };
    f.call(m.exports, m.exports, require('module').createRequire(${JSON.stringify(bundle)}), m, ${JSON.stringify(bundle)}, ${JSON.stringify(path.dirname(bundle))})`);
  const added = [...daemon].filter((m) => !bare.has(m));
  expect(added.length).toBeGreaterThan(0); // the bundle was loaded: it needs net, fs/promises…
  for (const m of onFirstUse) expect(added).not.toContain(m);
});

test('the on-first-use accessors give the real builtins', () => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const lazy = require('../../src/loader/on-first-use') as Record<string, () => unknown>;
  expect(lazy.childProcess()).toBe(require('node:child_process'));
  expect(lazy.workerThreads()).toBe(require('node:worker_threads'));
  expect(lazy.zlib()).toBe(require('node:zlib'));
  expect(lazy.tty()).toBe(require('node:tty'));
  expect(lazy.v8()).toBe(require('node:v8'));
  /* eslint-enable @typescript-eslint/no-require-imports */
});
