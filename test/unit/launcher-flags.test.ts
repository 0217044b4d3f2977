// The launchers' V8 flags set back to V8's defaults first thing (src/loader/launcher-flags.ts):
// in a real node started with the shim launcher's own node_flags, V8's flag hash (which decides
// whether any code cache, Node's own for its builtins included, is taken) is a plain node's again,
// while what the flags were for stays: the heap limits and gc().
import { execFileSync, spawnSync } from 'node:child_process';
import { buildSync } from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultsFor, LAUNCHER_FLAG_DEFAULTS } from '../../src/loader/launcher-flags';
import { launcherNodeFlags } from '../helpers/launcher-flags';

const root = path.resolve(__dirname, '../..');
const launcherFlags = launcherNodeFlags();

test('every V8 flag the shim launcher gives node has its default listed, and only those are set back', () => {
  for (const flag of launcherFlags) expect([...LAUNCHER_FLAG_DEFAULTS.keys()]).toContain(flag.split('=', 1)[0]);
  expect(defaultsFor(launcherFlags).split(' ').sort()).toEqual(['--max-old-space-size=0', '--max-semi-space-size=0', '--no-expose-gc']);
  // Others (FERRY_NODE_OPTIONS: --cpu-prof, --stack-size) are left; V8's underscore spelling is one.
  expect(defaultsFor(['--cpu-prof', '--stack-size=2000', '--max_old_space_size=64', '--max-old-space-size=128'])).toBe('--max-old-space-size=0');
  expect(defaultsFor(['--expose-gc=true', '--constructor'])).toBe('--no-expose-gc');
  expect(defaultsFor([])).toBe('');
});

describe('in a node started with the launcher flags', () => {
  let dir: string;
  let withUndo: string;
  let withoutUndo: string;
  // What a program sees: V8's cache tag (its version, CPU features and the flag hash), the heap's
  // limit, the young generation's largest size under allocation, and whether gc() is there.
  const probe = `import * as v8 from 'node:v8';
    const keep: object[] = [];
    let young = 0;
    for (let i = 0; i < 100000; i++) {
      keep.push({ i, a: [i] }); if (keep.length > 30000) keep.shift();
      if (i % 1000 === 0) young = Math.max(young, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size);
    }
    console.log(JSON.stringify({ tag: v8.cachedDataVersionTag(), limitMiB: v8.getHeapStatistics().heap_size_limit / 1048576, youngMiB: young / 1048576, gc: typeof (globalThis as { gc?: unknown }).gc }));`;
  const run = (file: string, flags: string[]) => JSON.parse(execFileSync(process.execPath, [...flags, file], { encoding: 'utf8' })) as { tag: number; limitMiB: number; youngMiB: number; gc: string };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-launcher-flags-'));
    // The addon beside the scripts, as in dist/.
    fs.copyFileSync(path.join(root, 'build', 'Release', 'ferry_sys.node'), path.join(dir, 'ferry_sys.node'));
    const common = { bundle: true, platform: 'node' as const, format: 'cjs' as const, target: 'node20', logLevel: 'error' as const };
    withUndo = path.join(dir, 'with-undo.js');
    withoutUndo = path.join(dir, 'without-undo.js');
    buildSync({ ...common, outfile: withUndo, stdin: { resolveDir: path.join(root, 'src/loader'), loader: 'ts', sourcefile: 'a.ts', contents: `import './undo-launcher-flags';\n${probe}` } });
    buildSync({ ...common, outfile: withoutUndo, stdin: { resolveDir: path.join(root, 'src/loader'), loader: 'ts', sourcefile: 'b.ts', contents: probe } });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("V8's flag hash is a plain node's again, and the heap limits and gc() stay", () => {
    const plain = run(withoutUndo, []);
    const flagged = run(withoutUndo, launcherFlags);
    const undone = run(withUndo, launcherFlags);
    // Left as they are, the flags change the tag: every cache made without them is refused.
    expect(flagged.tag).not.toBe(plain.tag);
    expect(undone.tag).toBe(plain.tag);
    // --max-old-space-size=256, --max-semi-space-size=1 (a young generation of 2 x 1 MiB), --expose-gc.
    for (const r of [flagged, undone]) {
      expect(r.limitMiB).toBeLessThan(300);
      expect(r.youngMiB).toBeLessThanOrEqual(2);
      expect(r.gc).toBe('function');
    }
    expect(plain.limitMiB).toBeGreaterThan(1000);
    expect(plain.youngMiB).toBeGreaterThan(2);
    expect(plain.gc).toBe('undefined');
  });

  test('without the addon beside it the flags stay and the program still runs', () => {
    const alone = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-launcher-flags-alone-'));
    try {
      fs.copyFileSync(withUndo, path.join(alone, 'with-undo.js'));
      const r = run(path.join(alone, 'with-undo.js'), launcherFlags);
      expect(r.tag).toBe(run(withoutUndo, launcherFlags).tag);
      expect(r.gc).toBe('function');
    } finally {
      fs.rmSync(alone, { recursive: true, force: true });
    }
  });
});

test("the built shim, run by its launcher with the launcher's flags, ends with a plain node's flag hash", () => {
  // `make build` first. A preload that asks V8 only at exit, after the entry (dist/shim-entry.js)
  // has run; it loads nothing at start-up (FERRY_NODE_OPTIONS goes on node's command line).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-launcher-flags-shim-'));
  try {
    const preload = path.join(dir, 'at-exit.js');
    fs.writeFileSync(preload, `process.on('exit', () => { const v8 = require('v8');
      require('fs').writeSync(2, JSON.stringify({ tag: v8.cachedDataVersionTag(), limitMiB: v8.getHeapStatistics().heap_size_limit / 1048576, gc: typeof gc }) + '\\n'); });`);
    const env = { ...process.env, FERRY_NODE_OPTIONS: `-r ${preload}` };
    const r = spawnSync('/bin/sh', [path.join(root, 'shim', 'containerd-shim-ferry-v2'), '-v'], { env, encoding: 'utf8' });
    expect(r.stdout).toContain('io.containerd.ferry.v2');
    const seen = JSON.parse(r.stderr.trim().split('\n').pop()!) as { tag: number; limitMiB: number; gc: string };
    const plainTag = Number(execFileSync(process.execPath, ['-p', "require('v8').cachedDataVersionTag()"], { encoding: 'utf8' }));
    expect(seen).toEqual({ tag: plainTag, limitMiB: expect.any(Number), gc: 'function' });
    expect(seen.limitMiB).toBeLessThan(300);
    // …and sets them back before the loader requires vm, the first builtin Node did not load at start-up.
    const entry = fs.readFileSync(path.join(root, 'dist', 'shim-entry.js'), 'utf8');
    expect(entry.indexOf('undoLauncherFlags();')).toBeGreaterThan(0);
    expect(entry.indexOf('undoLauncherFlags();')).toBeLessThan(entry.indexOf('require("node:vm")'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
