// An installed ferry needs nothing from the tree it was built in (issue 11, point 1): containerd
// can be given the shim as an absolute path (`ctr run --runtime /abs/path`, CRI's runtime_path),
// and a copy or a link of $PREFIX/bin/containerd-shim-ferry-v2 anywhere must run containers.
// The install is `make install PREFIX=…`'s recipe (contrib/install.sh) into a temp dir — never
// /usr/local — from the dist/ that `make build` made.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { REPO_ROOT } from '../helpers/containerd';
import { expectExit, isGoShim, lanes, uniqueId, useContainerd } from '../helpers/lanes';
import { findShimDaemons, waitFor } from '../helpers/procfs';

jest.setTimeout(120000);

let dir: string;
let prefix: string;
let lib: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-install-'));
  prefix = path.join(dir, 'prefix');
  lib = path.join(prefix, 'lib', 'ferry');
  execFileSync('bash', [path.join(REPO_ROOT, 'contrib', 'install.sh'), prefix], { cwd: REPO_ROOT, stdio: 'pipe' });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the install lays out launchers, bundles with their code caches and the native addons', () => {
  // Absolute places, and not one path into the build tree.
  const shim = fs.readFileSync(path.join(prefix, 'bin', 'containerd-shim-ferry-v2'), 'utf8');
  expect(shim).toContain(`lib='${lib}'`);
  expect(shim).toMatch(/^node='\/[^']+'$/m);
  const ferry = fs.readFileSync(path.join(prefix, 'bin', 'ferry'), 'utf8');
  expect(ferry).toContain(`const lib = '${lib}';`);
  expect(ferry).toContain(`lib='${lib}'`);
  expect(ferry).toMatch(/^node='\/[^']+'$/m);
  expect(ferry).toMatch(/^#!\/\S+\n/);
  for (const [name, text] of [['containerd-shim-ferry-v2', shim], ['ferry', ferry]]) {
    expect(fs.statSync(path.join(prefix, 'bin', name)).mode & 0o111).toBe(0o111);
    expect(text).not.toContain(REPO_ROOT);
  }
  for (const f of ['shim-entry.js', 'shim.js', 'shim.js.cache', 'shim-daemon.js', 'shim-daemon.js.cache', 'grpc-js.js',
    'ferry-entry.js', 'ferry.js', 'ferry_sys.node', 'node_modules/zstd-napi/build/Release/binding.node']) {
    expect(fs.existsSync(path.join(lib, f))).toBe(true);
  }
});

test('a copy of ferry elsewhere runs, and loads zstd-napi from the install', () => {
  const copy = path.join(dir, 'elsewhere', 'ferry');
  fs.mkdirSync(path.dirname(copy));
  fs.copyFileSync(path.join(prefix, 'bin', 'ferry'), copy);
  fs.chmodSync(copy, 0o755);
  expect(execFileSync(copy, ['--version'], { encoding: 'utf8', cwd: '/' }).trim()).toMatch(/^\d+\.\d+\.\d+$/);
  // What dist/ferry.js's require('zstd-napi') resolves to from its installed place.
  const resolved = execFileSync(process.execPath, ['-e', `console.log(require('module').createRequire(${JSON.stringify(path.join(lib, 'ferry.js'))}).resolve('zstd-napi'))`], { encoding: 'utf8', cwd: '/' }).trim();
  expect(resolved.startsWith(`${lib}/node_modules/zstd-napi/`)).toBe(true);
});

describe.each(lanes().filter((l) => !isGoShim(l)))('installed shim [$name]', (lane) => {
  const containerd = useContainerd(lane);

  /** The three ways a user points containerd at an installed shim. */
  const variants: Array<[string, () => string]> = [
    ['$PREFIX/bin itself', () => path.join(prefix, 'bin', 'containerd-shim-ferry-v2')],
    ['a copy in another directory', () => {
      const copy = path.join(dir, `copy-${lane.containerd}-${lane.grpc}`, 'containerd-shim-ferry-v2');
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      fs.copyFileSync(path.join(prefix, 'bin', 'containerd-shim-ferry-v2'), copy);
      fs.chmodSync(copy, 0o755);
      return copy;
    }],
    ['a symlink in another directory', () => {
      const link = path.join(dir, `link-${lane.containerd}-${lane.grpc}`, 'containerd-shim-ferry-v2');
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.symlinkSync(path.join(prefix, 'bin', 'containerd-shim-ferry-v2'), link);
      return link;
    }],
  ];

  test.each(variants)(`ctr run --runtime <%s> runs a container from the install [${lane.name}]`, async (_what, where) => {
    const c = containerd();
    const shim = where();
    const echo = await c.ctr(['run', '--rm', '--runtime', shim, c.image!.name, uniqueId('inst-echo'), 'echo', 'installed']);
    expectExit(c, echo, 0);
    expect(echo.stdout).toBe('installed\n');

    // A running daemon shows where it came from: the install's entry, and its addon.
    const id = uniqueId('inst-d');
    expectExit(c, await c.ctr(['run', '-d', '--runtime', shim, c.image!.name, id, 'sleep', '1000']), 0);
    const daemon = await waitFor(() => findShimDaemons(c.address, id)[0], 10000);
    if (!daemon) throw new Error(`no shim daemon found for ${id}`);
    expect(daemon.argv).toContain(path.join(lib, 'shim-entry.js'));
    const maps = fs.readFileSync(`/proc/${daemon.pid}/maps`, 'utf8');
    expect(maps).toContain(path.join(lib, 'ferry_sys.node'));
    expect(maps).not.toContain(path.join(REPO_ROOT, 'build'));
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'KILL', id]), 0);
    await waitFor(async () => (await c.ctr(['task', 'rm', id])).code === 0, 15000);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });
});
