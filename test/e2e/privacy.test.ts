// Issue 12, point 10: what a shim makes stays root's. The shim socket is 0600 in a 0700 directory;
// every file ferry (and runc and CRIU on its behalf) writes in a bundle is 0600, its directories
// 0700; a checkpoint's image and work directories are 0700 with 0600 files. And a real
// unprivileged user of this host — created for the test, removed after — can neither connect to
// the socket nor read anything of a checkpoint, not even one dumped into a world-readable
// directory.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { callTasks, runcCheckpointOptions } from '../helpers/containerd-api';
import { ctrRunDetached, expectExit, FERRY_RUNTIME, lanes, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';

jest.setTimeout(180_000);

/** Files in a bundle that containerd writes (not the shim), with the modes containerd gives them. */
const CONTAINERD_FILES = new Set(['config.json', 'bootstrap.json', 'shim-binary-path', 'log', 'work', 'rootfs']);

interface Unprivileged { name: string; uid: number; gid: number }

function createUser(): Unprivileged {
  const name = `ferry-p${process.pid}`.slice(0, 31);
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  return { name, uid, gid };
}

/** Runs a small Node script as the user; returns what it printed (its own findings, one per line). */
function asUser(u: Unprivileged, script: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, ['-e', script, ...args], { uid: u.uid, gid: u.gid, cwd: '/', env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', timeout: 20000 });
  if (r.error) throw r.error;
  return `${r.stdout}${r.stderr}`.trim();
}

const TRY_CONNECT = `
const net = require('net');
const s = net.connect(process.argv[1]);
s.on('connect', () => { console.log('connected'); s.destroy(); });
s.on('error', (e) => console.log(e.code));`;

const TRY_READ = `
const fs = require('fs');
for (const p of process.argv.slice(1)) {
  try { fs.readdirSync(p); console.log('listed ' + p); } catch (e) { console.log(e.code + ' list ' + p); }
  try { fs.readFileSync(p); console.log('read ' + p); } catch (e) { console.log(e.code + ' read ' + p); }
}`;

/** Every entry under `dir` (not into rootfs) with its mode. */
function modes(dir: string, base = dir): [string, number, boolean][] {
  const out: [string, number, boolean][] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const st = fs.lstatSync(p);
    out.push([path.relative(base, p), st.mode & 0o7777, st.isDirectory()]);
    if (st.isDirectory() && e.name !== 'rootfs') out.push(...modes(p, base));
  }
  return out;
}

describe.each(lanes().filter((l) => l.runtime === FERRY_RUNTIME))('privacy [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  let user: Unprivileged;
  let tmp: string;
  beforeAll(() => {
    user = createUser();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-privacy-'));
    fs.chmodSync(tmp, 0o755); // a place the user may look into
  });
  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
    execFileSync('userdel', [user.name]);
  });

  test(`socket 0600 in a root-only dir, bundle files 0600, checkpoint dirs 0700: an unprivileged user can neither connect nor read [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('private');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sh', '-c', 'echo secret-in-memory > /dev/null; while :; do sleep 0.2; done']), 0);
    await waitForStatus(c, id, 'RUNNING');
    const socket = c.shimSocketPath(id)!;
    try {
      expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
      // The directory: nobody but root (ferry makes it 0700; the Go shim 0600, and whichever
      // shim ran first on the host made it, so only the absence of group and other bits is ferry's).
      expect(fs.statSync(path.dirname(socket)).mode & 0o077).toBe(0);
      expect(asUser(user, TRY_CONNECT, socket)).toBe('EACCES');

      // A checkpoint dumped where the user can look: image_path in a 0755 directory.
      const image = path.join(tmp, `${id}-image`);
      // (containerd 2.x stores nothing of a checkpoint given an image_path; 1.7 an empty tar.)
      await callTasks(c, 'checkpoint', { containerId: id, options: runcCheckpointOptions({ imagePath: image }) });
      const images = fs.readdirSync(image);
      expect(images).toEqual(expect.arrayContaining(['pstree.img', 'inventory.img']));
      expect(fs.statSync(image).mode & 0o777).toBe(0o700);
      for (const f of images) expect([f, fs.statSync(path.join(image, f)).mode & 0o077]).toEqual([f, 0]);
      const pages = images.filter((f) => f.startsWith('pages-')).map((f) => path.join(image, f));
      const seen = asUser(user, TRY_READ, image, ...pages, path.join(image, 'pstree.img')).split('\n');
      expect(seen.filter((l) => /^(listed|read) /.test(l))).toEqual([]);
      expect(seen.every((l) => l.startsWith('EACCES '))).toBe(true);

      // The bundle: every file the shim, runc or CRIU wrote is 0600, every directory 0700.
      const bundle = c.bundleDir(id);
      const written = modes(bundle).filter(([rel]) => !CONTAINERD_FILES.has(rel.split('/')[0]!));
      expect(written.map(([rel]) => rel)).toEqual(expect.arrayContaining(['options.json', 'init.pid', 'log.json', 'criu-work', 'criu-work/dump.log']));
      for (const [rel, mode, isDir] of written) expect([rel, mode.toString(8)]).toEqual([rel, isDir ? '700' : '600']);
      const bundleSeen = asUser(user, TRY_READ, path.join(bundle, 'criu-work', 'dump.log'), path.join(bundle, 'options.json')).split('\n');
      expect(bundleSeen.filter((l) => /^(listed|read) /.test(l))).toEqual([]);
      // (The user cannot even connect to containerd's socket to ask for the checkpoint image.)
      expect(asUser(user, TRY_CONNECT, c.address)).toBe('EACCES');
    } finally {
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitForStatus(c, id, 'STOPPED');
      await c.ctr(['task', 'rm', id]);
      await c.ctr(['container', 'rm', id]);
    }
  });
});
