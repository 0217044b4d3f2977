// FileIO (`file://` log URIs) with real kernel pipes and real child processes standing in for
// the container: the child gets pipes as fds 1 and 2 (what CRIU can dump and runc can map on
// restore), the shim copies both into the file, and waitCopied resolves only once everything
// the child wrote is in the file.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileIO } from '../../src/io/file-io';

let dir: string;
const ios: FileIO[] = [];
const children: ChildProcess[] = [];

beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-file-io-')); });
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const io of ios.splice(0)) io.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function fileIO(file: string, owner?: { uid: number; gid: number }): FileIO {
  const io = FileIO.create(new URL(`file://${file}`), owner);
  ios.push(io);
  return io;
}

/** Runs `script` as the "container" with the IO's stdio, as runc create would; returns its exit. */
function runContainer(io: FileIO, script: string): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn('sh', ['-c', script], { stdio: io.childStdio() });
  children.push(child);
  io.closeChildEnds();
  io.start();
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

/** What this process's fds point at (pipe:[inode], file paths). */
function openTargets(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try { out.push(fs.readlinkSync(`/proc/self/fd/${fd}`)); } catch { /* closed meanwhile */ }
  }
  return out;
}

test('the container gets pipes as stdout and stderr; both are copied into the file, parents 0755, file 0644', async () => {
  const file = path.join(dir, 'a', 'b', 'out.log');
  const io = fileIO(file);
  expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o755);
  expect(fs.statSync(file).mode & 0o777).toBe(0o644);
  const { exited } = runContainer(io, 'echo "fd1 $(readlink /proc/$$/fd/1)"; echo "fd2 $(readlink /proc/$$/fd/2)" >&2; exit 3');
  expect(await exited).toBe(3);
  await io.waitCopied(5000);
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).sort();
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(/^fd1 pipe:\[\d+\]$/);
  expect(lines[1]).toMatch(/^fd2 pipe:\[\d+\]$/);
  // Two distinct pipes, as the Go shim's NewPipeIO makes them.
  expect(lines[0]!.slice(4)).not.toBe(lines[1]!.slice(4));
});

test('an existing file is appended to, its mode and owner left alone', async () => {
  const file = path.join(dir, 'old.log');
  fs.writeFileSync(file, 'before\n', { mode: 0o600 });
  fs.chownSync(file, 4321, 4321);
  const io = fileIO(file, { uid: 1234, gid: 1234 });
  const { exited } = runContainer(io, 'echo after');
  await exited;
  await io.waitCopied(5000);
  expect(fs.readFileSync(file, 'utf8')).toBe('before\nafter\n');
  const st = fs.statSync(file);
  expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o600, 4321, 4321]);
});

test('a file it creates, and the pipes the container writes to, belong to the IO owner', () => {
  const file = path.join(dir, 'owned.log');
  const io = fileIO(file, { uid: 1234, gid: 2345 });
  const st = fs.statSync(file);
  expect([st.uid, st.gid]).toEqual([1234, 2345]);
  const [, out, err] = io.childStdio() as [unknown, number, number];
  for (const fd of [out, err]) {
    const p = fs.fstatSync(fd);
    expect(p.isFIFO()).toBe(true);
    expect([p.uid, p.gid]).toEqual([1234, 2345]);
  }
});

test('waitCopied resolves only once the container has gone and all it wrote is in the file', async () => {
  const file = path.join(dir, 'late.log');
  const io = fileIO(file);
  const started = Date.now();
  runContainer(io, 'echo early; sleep 0.5; seq 1 200000; echo late >&2');
  await io.waitCopied(20000);
  expect(Date.now() - started).toBeGreaterThanOrEqual(450);
  // stdout arrives whole and in order; stderr's one line may fall anywhere, even inside a
  // stdout line (two pipes, two copies, as the Go shim's).
  const content = fs.readFileSync(file, 'utf8');
  expect(content.split('late\n')).toHaveLength(2);
  expect(content.replace('late\n', '')).toBe(`early\n${Array.from({ length: 200000 }, (_, i) => `${i + 1}\n`).join('')}`);
});

test('waitCopied gives up after its timeout when a daemonized child holds the pipe', async () => {
  const file = path.join(dir, 'held.log');
  const io = fileIO(file);
  const pidFile = path.join(dir, 'daemon.pid');
  const { exited } = runContainer(io, `sleep 30 & echo $! > ${pidFile}; echo parent-done`);
  await exited;
  const started = Date.now();
  try {
    await io.waitCopied(300);
  } finally {
    process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
  }
  const waited = Date.now() - started;
  expect(waited).toBeGreaterThanOrEqual(250);
  expect(waited).toBeLessThan(5000);
  expect(fs.readFileSync(file, 'utf8')).toBe('parent-done\n');
});

test('close() releases the pipes and the file, started or not', async () => {
  const held = (io: FileIO, file: string) => {
    const [, out, err] = io.childStdio() as [unknown, number, number];
    return [`pipe:[${fs.fstatSync(out).ino}]`, `pipe:[${fs.fstatSync(err).ino}]`, file];
  };
  const x = path.join(dir, 'x.log');
  const unstarted = FileIO.create(new URL(`file://${x}`));
  const unstartedTargets = held(unstarted, x);
  expect(openTargets()).toEqual(expect.arrayContaining(unstartedTargets));
  unstarted.close();
  expect(openTargets().filter((t) => unstartedTargets.includes(t))).toEqual([]);

  const y = path.join(dir, 'y.log');
  const started = FileIO.create(new URL(`file://${y}`));
  const startedTargets = held(started, y);
  const child = spawn('sh', ['-c', 'echo hi'], { stdio: started.childStdio() });
  started.closeChildEnds();
  started.start();
  await new Promise((resolve) => child.once('exit', resolve));
  await started.waitCopied(5000);
  started.close();
  // The file's stream closes its fd asynchronously.
  for (let i = 0; i < 50 && openTargets().some((t) => startedTargets.includes(t)); i++) await new Promise((r) => setTimeout(r, 20));
  expect(openTargets().filter((t) => startedTargets.includes(t))).toEqual([]);
  expect(fs.readFileSync(y, 'utf8')).toBe('hi\n');
});
