// What a runc killed in the middle leaves in its state dir is removed without harming the
// container: the rootfs a killed `runc restore` left bind-mounted at <state>/criu-root is
// unmounted BEFORE `runc delete --force`, whose RemoveAll of a state dir without state.json
// would otherwise delete the rootfs's files through that mount. Real bind mounts (root).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { removeHalfCreated, unmountRuncLeftovers } from '../../src/runc/half-created';
import { Runc } from '../../src/runc/runc';
import { mountPointsUnder } from '../../src/sys/mounts';

let tmp: string;
let root: string;
let rootfs: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-halfcreated-'));
  root = path.join(tmp, 'runc-root');
  rootfs = path.join(tmp, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(rootfs, 'bin', 'busybox'), 'the container');
});
afterEach(() => {
  for (const p of mountPointsUnder(tmp)) execFileSync('umount', ['-l', p]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A runc stand-in whose `delete --force` does what runc 1.1 does for a dir without state.json. */
function runcLikeRemoveAll(): Runc {
  const bin = path.join(tmp, 'runc');
  fs.writeFileSync(bin, `#!/bin/sh\nfor id; do :; done\nrm -rf "${root}/$id"\necho '{"level":"error","msg":"container does not exist"}' >> ${tmp}/log.json\nexit 1\n`, { mode: 0o755 });
  return new Runc({ binary: bin, root, logPath: path.join(tmp, 'log.json') });
}

function leaveCriuRoot(id: string): string {
  const criuRoot = path.join(root, id, 'criu-root');
  fs.mkdirSync(criuRoot, { recursive: true });
  execFileSync('mount', ['--bind', rootfs, criuRoot]);
  return criuRoot;
}

test('a killed restore: the rootfs mount goes first, the state dir next, the rootfs keeps its files', async () => {
  const criuRoot = leaveCriuRoot('c1');
  const cleaned = await removeHalfCreated(runcLikeRemoveAll(), 'c1');
  expect(cleaned).toEqual([`unmounted ${criuRoot}`]);
  expect(fs.existsSync(path.join(root, 'c1'))).toBe(false);
  expect(mountPointsUnder(tmp)).toEqual([]);
  expect(fs.readFileSync(path.join(rootfs, 'bin', 'busybox'), 'utf8')).toBe('the container');
});

test('a state dir runc does not remove is removed once nothing is mounted in it', async () => {
  fs.mkdirSync(path.join(root, 'c2'), { recursive: true });
  fs.writeFileSync(path.join(root, 'c2', 'leftover'), '');
  const bin = path.join(tmp, 'runc-noop');
  fs.writeFileSync(bin, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  const cleaned = await removeHalfCreated(new Runc({ binary: bin, root, logPath: path.join(tmp, 'log.json') }), 'c2');
  expect(cleaned).toEqual([`removed ${path.join(root, 'c2')}`]);
  expect(fs.existsSync(path.join(root, 'c2'))).toBe(false);
});

test('an id that would leave runc\'s root touches nothing', async () => {
  const outside = leaveCriuRoot('victim');
  for (const id of ['../runc-root/victim/..', '..', '', 'a/../../rootfs']) {
    expect(unmountRuncLeftovers(path.join(root, 'x'), id)).toEqual([]);
  }
  expect(mountPointsUnder(tmp)).toEqual([outside]);
  expect(fs.existsSync(path.join(rootfs, 'bin', 'busybox'))).toBe(true);
});
