// spawnChild (src/process/spawn.ts): runc's processes started by posix_spawnp instead of
// child_process's fork, reaped through the reaper's claim. Real processes throughout: exit codes
// and signals, captured output, input, the fds the child gets (and only those), cwd, umask,
// environment, signal dispositions, errors; and, in a subreaper process of its own, many spawns
// side by side with child_process children and re-parented orphans, every exit kept.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnChild, endInput, type SpawnOptions, type ChildExit } from '../../src/process/spawn';
import { pipeReader } from '../../src/io/fifo';
import { pipe2, setCloexec } from '../../src/sys/native';
import { runBundledScript } from '../helpers/bundled-script';

const env = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'FERRY_SPAWN_TEST=yes'];
const opts = (o: Partial<SpawnOptions> = {}): SpawnOptions => ({ stdio: ['ignore', 'pipe', 'pipe'], cwd: '', env, ...o });

/** Runs `sh -c script` and returns its exit with what it wrote to stdout and stderr. */
async function sh(script: string, o: Partial<SpawnOptions> = {}, input?: string): Promise<ChildExit & { out: string; err: string }> {
  const c = spawnChild('sh', ['-c', script], opts(input !== undefined ? { stdio: ['pipe', 'pipe', 'pipe'], ...o } : o));
  let out = '';
  let err = '';
  c.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  c.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  if (input !== undefined) endInput(c.stdin!, input);
  return { ...(await c.closed), out, err };
}

/** This process's open fds with what they are ("7 -> pipe:[123]"), but the directory's own. */
function openFds(): Set<string> {
  const out = new Set<string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try { out.add(`${fd} -> ${fs.readlinkSync(`/proc/self/fd/${fd}`)}`); } catch { /* the readdir's own fd */ }
  }
  return out;
}
/** The fds open now that were not in `before` (jest may close some of its own meanwhile). */
const newFds = (before: Set<string>) => [...openFds()].filter((f) => !before.has(f) && !f.endsWith('/proc/self/fd'));

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-spawn-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('exit codes, and signals that ended the child', async () => {
  expect(await sh('exit 0')).toMatchObject({ code: 0, signal: null });
  expect(await sh('exit 7')).toMatchObject({ code: 7, signal: null });
  expect(await sh('exit 255')).toMatchObject({ code: 255, signal: null });
  expect(await sh('kill -TERM $$')).toMatchObject({ code: null, signal: 'SIGTERM' });
  // The daemon ignores SIGPIPE (Node does); the child must not: a write to a closed pipe kills it.
  expect(await sh('kill -PIPE $$')).toMatchObject({ code: null, signal: 'SIGPIPE' });
});

test('stdout and stderr are captured whole; the close waits for the end of the output', async () => {
  const r = await sh('echo out; echo err >&2; head -c 1048576 /dev/zero | tr "\\0" x');
  expect(r.code).toBe(0);
  expect(r.err).toBe('err\n');
  expect(r.out.length).toBe(4 + 1048576);
  expect(r.out.startsWith('out\nxxx')).toBe(true);
  // A grandchild holding stdout: close waits for its output, as child_process's 'close' does.
  const g = await sh('(sleep 0.3; echo late) & echo early');
  expect(g.out).toBe('early\nlate\n');
});

test('input goes to stdin and is closed after it', async () => {
  const big = 'y'.repeat(300_000) + '\n';
  const r = await sh('wc -c', {}, big);
  expect(r.out.trim()).toBe(String(big.length));
  expect((await sh('cat', {}, '{"cpu":{}}')).out).toBe('{"cpu":{}}');
});

test('given fds become 0/1/2; ignore is /dev/null', async () => {
  const [r, w] = pipe2();
  const c = spawnChild('sh', ['-c', 'echo to-out; echo to-err >&2; readlink /proc/self/fd/0'], { stdio: ['ignore', w, w], cwd: '', env });
  fs.closeSync(w);
  let got = '';
  const reader = pipeReader(r).setEncoding('utf8');
  reader.on('data', (d: string) => { got += d; });
  const ended = new Promise((res) => reader.once('close', res));
  expect(await c.closed).toEqual({ code: 0, signal: null });
  await ended;
  expect(got).toBe('to-out\nto-err\n/dev/null\n');
  expect(c.stdout).toBeNull();
  expect(c.stderr).toBeNull();
});

test('the child gets no fd but 0, 1 and 2, even one not close-on-exec; the parent keeps none', async () => {
  const before = openFds();
  const leaky = fs.openSync('/etc/hostname', 'r');
  setCloexec(leaky, false);
  const [r, w] = pipe2();
  try {
    // ls of the shell's own fds (ls itself opens the directory as fd 3).
    const res = await sh('ls /proc/$$/fd');
    expect(res.out.split('\n').filter(Boolean).sort()).toEqual(['0', '1', '2']);
  } finally {
    for (const fd of [leaky, r, w]) fs.closeSync(fd);
  }
  await Promise.all(Array.from({ length: 20 }, (_, i) => sh(`echo ${i}; exit ${i}`, i % 2 ? {} : { stdio: ['pipe', 'pipe', 'ignore'] }, i % 2 ? undefined : 'in')));
  expect(newFds(before)).toEqual([]);
});

test('cwd, umask for the spawn only, the environment given, default signal dispositions', async () => {
  const mask = process.umask();
  const r = await sh('pwd; umask; echo "$FERRY_SPAWN_TEST $HOME"; grep -E "^Sig(Ign|Blk)" /proc/self/status', { cwd: dir, umask: 0o077 });
  expect(process.umask()).toBe(mask);
  const [pwd, umask, envLine, blocked, ignored] = r.out.trim().split('\n');
  expect(pwd).toBe(fs.realpathSync(dir));
  expect(umask).toBe('0077');
  expect(envLine).toBe('yes '); // only the environment given: no HOME
  // Nothing blocked, nothing ignored: Node's SIGPIPE ignore and glibc's internal signals included.
  expect(blocked).toBe('SigBlk:\t0000000000000000');
  expect(ignored).toBe('SigIgn:\t0000000000000000');
  expect((await sh('umask')).out.trim()).toBe(mask.toString(8).padStart(4, '0'));
});

test('a binary not found, not executable, or a cwd missing: the errno, nothing left open', () => {
  const before = openFds();
  const fail = (file: string, o: Partial<SpawnOptions> = {}) => {
    try { spawnChild(file, [], opts(o)); } catch (e) { return e as NodeJS.ErrnoException; }
    throw new Error('spawned');
  };
  expect(fail('ferry-no-such-binary')).toMatchObject({ code: 'ENOENT', syscall: 'posix_spawnp' });
  expect(fail(path.join(dir, 'missing'))).toMatchObject({ code: 'ENOENT' });
  fs.writeFileSync(path.join(dir, 'plain'), 'not a program', { mode: 0o644 });
  expect(fail(path.join(dir, 'plain'))).toMatchObject({ code: 'EACCES' });
  expect(fail('sh', { cwd: path.join(dir, 'gone') })).toMatchObject({ code: 'ENOENT' });
  expect(newFds(before)).toEqual([]);
});

function runBundled(name: string, source: string, timeout = 90000): string {
  return runBundledScript('process', name, source, timeout);
}

// Fds 0-2 of the parent handed on (the daemon's own are /dev/null, but a caller may pass them):
// the file actions must not overwrite a source before it is dup'd.
test('sources among fds 0-2 reach the right slots', () => {
  const file = path.join(dir, 'out');
  const out = runBundled('spawn-low-fds', `
    import * as fs from 'fs';
    import { spawnChild } from './spawn';
    fs.closeSync(0);
    const fd = fs.openSync(${JSON.stringify(file)}, 'w'); // the lowest free fd: 0
    const c = spawnChild('sh', ['-c', 'echo out; echo err >&2; cat; echo end'], { stdio: ['ignore', fd, fd], cwd: '', env: ['PATH=/usr/bin:/bin'] });
    c.closed.then((e) => process.stdout.write(JSON.stringify({ fd, e })));
  `);
  expect(JSON.parse(out)).toEqual({ fd: 0, e: { code: 0, signal: null } });
  expect(fs.readFileSync(file, 'utf8')).toBe('out\nerr\nend\n');
});

test('many concurrent spawns beside child_process children and orphans, in a subreaper: every exit kept', () => {
  const out = runBundled('spawn-concurrent', `
    import { spawn, execFileSync } from 'child_process';
    import { reaper } from './reaper';
    import { spawnChild } from './spawn';
    import { setChildSubreaper } from '../sys/native';
    setChildSubreaper();
    reaper.start();
    const env = ['PATH=/usr/bin:/bin'];
    // A SIGCHLD listener does not keep the loop alive (the orphans' exits need one): this does.
    const keepAlive = setInterval(() => undefined, 1000);
    (async () => {
      const libuv = Array.from({ length: 40 }, (_, i) => new Promise<number>((res) => {
        const c = spawn('/bin/sh', ['-c', 'sleep 0.$((RANDOM % 3)); exit ' + (i % 50)]);
        reaper.trackLibuvChild(c);
        c.on('exit', (code) => res(code ?? -1));
      }));
      const orphans: Promise<number>[] = [];
      for (let i = 0; i < 10; i++) {
        const pid = Number(execFileSync('/bin/sh', ['-c', '(sleep 0.2; exit ' + (i + 1) + ') >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim());
        orphans.push(new Promise((res) => reaper.claim(pid, new Date(0), (e) => res(e.status))));
      }
      const spawned = Array.from({ length: 150 }, (_, i) => {
        const c = spawnChild('sh', ['-c', 'sleep 0.$((RANDOM % 2)); echo ' + i + '; exit ' + (i % 50)], { stdio: ['ignore', 'pipe', 'ignore'], cwd: '', env });
        let text = '';
        c.stdout!.setEncoding('utf8').on('data', (d: string) => { text += d; });
        return c.closed.then((e) => ({ code: e.code, text }));
      });
      const result = { libuv: await Promise.all(libuv), orphans: await Promise.all(orphans), spawned: await Promise.all(spawned) };
      reaper.stop();
      clearInterval(keepAlive);
      process.stdout.write(JSON.stringify(result));
    })();
  `);
  const r = JSON.parse(out) as { libuv: number[]; orphans: number[]; spawned: { code: number; text: string }[] };
  expect(r.libuv).toEqual(Array.from({ length: 40 }, (_, i) => i % 50));
  expect(r.orphans).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  expect(r.spawned).toEqual(Array.from({ length: 150 }, (_, i) => ({ code: i % 50, text: `${i}\n` })));
});

test('the child_process fallback (kernels without pidfd_open) gives the same results', async () => {
  const fork = { fork: true };
  expect(await sh('echo out; echo err >&2; exit 5', fork)).toEqual({ code: 5, signal: null, out: 'out\n', err: 'err\n' });
  expect(await sh('kill -TERM $$', fork)).toMatchObject({ code: null, signal: 'SIGTERM' });
  expect((await sh('cat', fork, 'input')).out).toBe('input');
  expect((await sh('pwd; umask', { ...fork, cwd: dir, umask: 0o077 })).out).toBe(`${fs.realpathSync(dir)}\n0077\n`);
  await expect(spawnChild('ferry-no-such-binary', [], opts(fork)).closed).rejects.toMatchObject({ code: 'ENOENT' });
});
