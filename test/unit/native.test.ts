// Real system calls through the ferry_sys addon (we run as root). Tests that change process-wide
// state (becoming a subreaper) or need a clean exit run in a separate node process, built from
// src/sys with esbuild the way dist/shim.js is, which also checks that the bundle finds the addon.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import {
  MNT_DETACH, MS, createFileFrom, dup, eventfd, findPackageRoot, type ErrnoError, getWinsize, isErrnoError, listenUnix, mount,
  mkfifo, nativeConstants, pipe2, receiveFd, setCloexec, setWinsize, umount2, umount2Async, waitpidNoHang, watchFd,
} from '../../src/sys/native';
import { unmountAllAsync } from '../../src/sys/mounts';
import { runBundledScript } from '../helpers/bundled-script';

const root = path.resolve(__dirname, '../..');
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runBundled(name: string, source: string, timeout = 20000): string {
  return runBundledScript('sys', name, source, timeout);
}

/** File status flags of one of our fds, from /proc/self/fdinfo. */
function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`no flags in fdinfo of ${fd}`);
  return parseInt(m[1], 8);
}

function expectErrno(fn: () => unknown, code: string, message?: RegExp): void {
  let caught: unknown;
  try { fn(); } catch (err) { caught = err; }
  expect(isErrnoError(caught, code)).toBe(true);
  expect((caught as NodeJS.ErrnoException).errno).toBe(os.constants.errno[code as keyof typeof os.constants.errno]);
  if (message) expect((caught as Error).message).toMatch(message);
}

describe('loading', () => {
  test('the package root is the directory with binding.gyp, from src/sys and from dist', () => {
    expect(findPackageRoot(path.join(root, 'src', 'sys'))).toBe(root);
    expect(findPackageRoot(path.join(root, 'dist'))).toBe(root);
    expect(() => findPackageRoot('/proc/self')).toThrow(/no binding.gyp/);
  });

  test('MS and MNT_DETACH match the kernel headers the addon was built with', () => {
    const c = nativeConstants();
    for (const [name, value] of Object.entries(MS)) expect([name, value]).toEqual([name, c[`MS_${name}`]]);
    expect(MNT_DETACH).toBe(c.MNT_DETACH);
  });
});

describe('child subreaper and waitpidNoHang', () => {
  test('orphaned grandchildren are re-parented to a subreaper, listed and reaped with their status', () => {
    const out = runBundled('subreaper', `
      import { spawnSync } from 'child_process';
      import { setChildSubreaper, waitpidNoHang } from './native';
      import { listChildren } from './children';
      // sh starts cmd in the background and exits at once, orphaning it.
      function orphan(cmd: string): number {
        return Number(spawnSync('sh', ['-c', cmd + ' >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).stdout.trim());
      }
      async function reap(pid: number) {
        for (let i = 0; i < 1000; i++) {
          const r = waitpidNoHang(pid);
          if (r) return r;
          await new Promise((res) => setTimeout(res, 10));
        }
        return null;
      }
      async function main() {
        const control = orphan('sleep 5');
        const listedWithoutSubreaper = listChildren().includes(control);
        process.kill(control, 'SIGKILL');
        setChildSubreaper();
        const exiting = orphan('sh -c "sleep 1; exit 7"');
        const listed = listChildren().includes(exiting);
        const whileRunning = waitpidNoHang(exiting);
        const exited = await reap(exiting);
        const listedAfterReap = listChildren().includes(exiting);
        const killed = orphan('sleep 30');
        process.kill(killed, 'SIGTERM');
        const signaled = await reap(killed);
        let again = '';
        try { waitpidNoHang(exiting); } catch (e) { again = (e as NodeJS.ErrnoException).code ?? ''; }
        console.log(JSON.stringify({ exiting, killed, listedWithoutSubreaper, listed, whileRunning, exited, listedAfterReap, signaled, again }));
      }
      main();
    `);
    const r = JSON.parse(out);
    expect(r.listedWithoutSubreaper).toBe(false);
    expect(r.listed).toBe(true);
    expect(r.whileRunning).toBeNull();
    expect(r.exited).toEqual({ pid: r.exiting, exitStatus: 7, signaled: false });
    expect(r.listedAfterReap).toBe(false);
    expect(r.signaled).toEqual({ pid: r.killed, exitStatus: 128 + os.constants.signals.SIGTERM, signaled: true });
    expect(r.again).toBe('ECHILD');
  });

  test('a running child gives null and is not reaped: child_process still sees its exit', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_code, signal) => res(signal)));
    expect(waitpidNoHang(child.pid!)).toBeNull();
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
  });

  test('a process that is not our child throws ECHILD; only one positive pid is accepted', () => {
    expectErrno(() => waitpidNoHang(1), 'ECHILD', /^waitpid 1: No child processes$/);
    expect(() => waitpidNoHang(-1)).toThrow(RangeError);
    expect(() => waitpidNoHang(0)).toThrow(RangeError);
  });
});

describe('pipe2, dup, setCloexec', () => {
  test('pipe2 makes a real pipe, close-on-exec by default, data goes through', () => {
    const [r, w] = pipe2();
    try {
      expect(fs.fstatSync(r).isFIFO()).toBe(true);
      expect(fs.fstatSync(w).isFIFO()).toBe(true);
      expect(fdFlags(r) & O_CLOEXEC).toBe(O_CLOEXEC);
      expect(fdFlags(r) & O_NONBLOCK).toBe(0);
      fs.writeSync(w, 'through the pipe');
      const buf = Buffer.alloc(64);
      expect(buf.toString('utf8', 0, fs.readSync(r, buf))).toBe('through the pipe');
    } finally {
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });

  test('pipe2 options: nonblock reads EAGAIN when empty; cloexec:false leaves the flag off', () => {
    const [r, w] = pipe2({ nonblock: true, cloexec: false });
    try {
      expect(fdFlags(r) & (O_NONBLOCK | O_CLOEXEC)).toBe(O_NONBLOCK);
      expect(() => fs.readSync(r, Buffer.alloc(8))).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
    } finally {
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });

  async function echoToStdout(stdout: number | 'pipe'): Promise<{ code: number | null; stderr: string }> {
    const child = spawn('sh', ['-c', 'echo hi > /dev/stdout'], { stdio: ['ignore', stdout, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    child.stdout?.resume();
    const code = await new Promise<number | null>((res) => child.on('close', res));
    return { code, stderr };
  }

  test('a child can open /dev/stdout on a pipe2 pipe (it cannot on node\'s socketpair)', async () => {
    const control = await echoToStdout('pipe');
    expect(control.code).not.toBe(0);
    expect(control.stderr).toMatch(/No such device or address/);

    const [r, w] = pipe2();
    try {
      const result = await echoToStdout(w);
      fs.closeSync(w);
      expect(result).toEqual({ code: 0, stderr: '' });
      const buf = Buffer.alloc(16);
      expect(buf.toString('utf8', 0, fs.readSync(r, buf))).toBe('hi\n');
      expect(fs.readSync(r, buf)).toBe(0); // EOF: no copy of the write end leaked anywhere
    } finally {
      fs.closeSync(r);
    }
  });

  test('dup gives a close-on-exec copy of the same open file; setCloexec toggles the flag', () => {
    const [r, w] = pipe2({ cloexec: false });
    const w2 = dup(w);
    try {
      expect(w2).not.toBe(w);
      expect(fdFlags(w2) & O_CLOEXEC).toBe(O_CLOEXEC);
      fs.writeSync(w2, 'via dup');
      const buf = Buffer.alloc(16);
      expect(buf.toString('utf8', 0, fs.readSync(r, buf))).toBe('via dup');
      setCloexec(w, true);
      expect(fdFlags(w) & O_CLOEXEC).toBe(O_CLOEXEC);
      setCloexec(w, false);
      expect(fdFlags(w) & O_CLOEXEC).toBe(0);
    } finally {
      [r, w, w2].forEach((fd) => fs.closeSync(fd));
    }
    expectErrno(() => dup(w2), 'EBADF', /^dup \d+: Bad file descriptor$/);
    expectErrno(() => setCloexec(w2, true), 'EBADF');
  });
});

describe('mkfifo', () => {
  test('makes a FIFO with the mode asked (less the umask) that carries data; an existing path is EEXIST', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-fifo-'));
    try {
      const p = path.join(dir, 'f');
      mkfifo(p, 0o600);
      const st = fs.lstatSync(p);
      expect(st.isFIFO()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600 & ~process.umask());
      // O_RDWR never blocks on a FIFO; what is written comes back out.
      const fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      fs.writeSync(fd, 'through the fifo');
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, fs.readSync(fd, buf)).toString()).toBe('through the fifo');
      fs.closeSync(fd);
      let err: unknown;
      try { mkfifo(p); } catch (e) { err = e; }
      expect(isErrnoError(err, 'EEXIST')).toBe(true);
      expect(() => mkfifo(path.join(dir, 'g'), -1)).toThrow(RangeError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('window size', () => {
  test('setWinsize/getWinsize on a pty master', () => {
    const master = fs.openSync('/dev/ptmx', fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    try {
      setWinsize(master, 33, 111);
      expect(getWinsize(master)).toEqual({ rows: 33, cols: 111 });
      setWinsize(master, 24, 80);
      expect(getWinsize(master)).toEqual({ rows: 24, cols: 80 });
    } finally {
      fs.closeSync(master);
    }
    expect(() => setWinsize(0, -1, 80)).toThrow(RangeError);
  });

  test('the process on the pty sees the size set on the master', async () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const pty = require('node-pty') as typeof import('node-pty');
    const term = pty.spawn('sh', ['-c', 'sleep 0.5; stty size'], { cols: 80, rows: 24 });
    let output = '';
    term.onData((d) => { output += d; });
    setWinsize((term as unknown as { _fd: number })._fd, 21, 77);
    await new Promise<void>((res) => term.onExit(() => res()));
    expect(output.trim()).toBe('21 77');
  });

  test('on something that is not a tty: ENOTTY', () => {
    const [r, w] = pipe2();
    try {
      expectErrno(() => setWinsize(w, 10, 10), 'ENOTTY', /^ioctl TIOCSWINSZ fd \d+: Inappropriate ioctl for device$/);
      expectErrno(() => getWinsize(w), 'ENOTTY');
    } finally {
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });
});

describe('listenUnix and receiveFd (runc --console-socket)', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sock-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('receives an fd and the message text sent with SCM_RIGHTS', async () => {
    const sock = path.join(dir, 'console.sock');
    const file = path.join(dir, 'secret.txt');
    fs.writeFileSync(file, 'read through a passed fd');
    const listenFd = listenUnix(sock);
    try {
      expect(fs.statSync(sock).isSocket()).toBe(true);
      expect(fdFlags(listenFd) & O_CLOEXEC).toBe(O_CLOEXEC);
      const received = receiveFd(listenFd, 10000);
      const sender = spawn('python3', ['-c', [
        'import os, socket, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        's.connect(sys.argv[1])',
        'socket.send_fds(s, [b"/dev/ptmx"], [os.open(sys.argv[2], os.O_RDONLY)])',
      ].join('\n'), sock, file], { stdio: 'inherit' });
      const senderExit = new Promise((res) => sender.on('exit', res));
      const { fd, data } = await received;
      expect(await senderExit).toBe(0);
      try {
        expect(data).toBe('/dev/ptmx');
        expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
        const buf = Buffer.alloc(64);
        expect(buf.toString('utf8', 0, fs.readSync(fd, buf, 0, 64, 0))).toBe('read through a passed fd');
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      fs.closeSync(listenFd);
    }
  });

  test('rejects with ETIMEDOUT when nobody connects, without blocking the event loop', async () => {
    const listenFd = listenUnix(path.join(dir, 'idle.sock'));
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 10);
    try {
      const started = Date.now();
      await expect(receiveFd(listenFd, 300)).rejects.toMatchObject({ code: 'ETIMEDOUT', errno: os.constants.errno.ETIMEDOUT });
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(ticks).toBeGreaterThanOrEqual(10);
    } finally {
      clearInterval(timer);
      fs.closeSync(listenFd);
    }
  });

  test('a message without an fd rejects with EBADMSG', async () => {
    const sock = path.join(dir, 'nofd.sock');
    const listenFd = listenUnix(sock);
    try {
      const received = receiveFd(listenFd, 10000);
      spawn('python3', ['-c', 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.send(b"x")', sock]);
      await expect(received).rejects.toMatchObject({ code: 'EBADMSG' });
    } finally {
      fs.closeSync(listenFd);
    }
  });

  test('listen errors: missing directory, path too long, address in use', () => {
    expectErrno(() => listenUnix(path.join(dir, 'nope', 'x.sock')), 'ENOENT', /nope\/x\.sock \(bind\): No such file or directory$/);
    expectErrno(() => listenUnix(path.join(dir, 'x'.repeat(120))), 'ENAMETOOLONG');
    const sock = path.join(dir, 'used.sock');
    const fd = listenUnix(sock);
    try {
      expectErrno(() => listenUnix(sock), 'EADDRINUSE');
    } finally {
      fs.closeSync(fd);
    }
    expect(() => listenUnix(path.join(dir, 'b.sock'), 0)).toThrow(RangeError);
  });

  test('with a backlog, connections wait until someone accepts (the daemon\'s socket before its listener exists)', async () => {
    const sock = path.join(dir, 'backlog.sock');
    const fd = listenUnix(sock, 16);
    const clients = Array.from({ length: 4 }, () => net.connect(sock));
    try {
      await Promise.all(clients.map((c) => new Promise((resolve, reject) => { c.once('connect', resolve); c.once('error', reject); })));
      const server = net.createServer((s) => s.end('hello'));
      await new Promise<void>((resolve) => server.listen({ fd }, resolve));
      const got = await Promise.all(clients.map((c) => new Promise<string>((resolve) => { let d = ''; c.on('data', (b) => { d += b; }); c.on('end', () => resolve(d)); })));
      expect(got).toEqual(['hello', 'hello', 'hello', 'hello']);
      await new Promise((resolve) => server.close(resolve));
    } finally {
      for (const c of clients) c.destroy();
    }
  });
});

describe('detachSession', () => {
  test('makes the process a session leader with /dev/null on fds 0-2', () => {
    // In a child: it changes the process's session and stdio. Its answer goes out on fd 3.
    const out = path.join(os.tmpdir(), `ferry-detach-${process.pid}.json`);
    try {
      runBundled('detach', `
        import * as fs from 'fs';
        import { detachSession } from './native';
        detachSession();
        const sid = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[3]);
        const fds = [0, 1, 2].map((fd) => fs.readlinkSync('/proc/self/fd/' + fd));
        fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify({ pid: process.pid, sid, fds }));
      `);
      const r = JSON.parse(fs.readFileSync(out, 'utf8')) as { pid: number; sid: number; fds: string[] };
      expect(r.sid).toBe(r.pid);
      expect(r.fds).toEqual(['/dev/null', '/dev/null', '/dev/null']);
    } finally {
      fs.rmSync(out, { force: true });
    }
  });
});

describe('mount and umount2', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-mnt-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  /** A source dir holding `hello` and an empty target dir. */
  function sourceAndTarget(): { src: string; dst: string } {
    const src = path.join(dir, 'src');
    const dst = path.join(dir, 'dst');
    fs.mkdirSync(src);
    fs.mkdirSync(dst);
    fs.writeFileSync(path.join(src, 'hello'), 'from src');
    return { src, dst };
  }

  test('bind-mount a directory, see its file, then detach it', () => {
    const { src, dst } = sourceAndTarget();
    mount(src, dst, '', MS.BIND, '');
    try {
      expect(fs.readFileSync(path.join(dst, 'hello'), 'utf8')).toBe('from src');
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${dst} `);
      // A read-only remount of the bind (no source, type or data) takes effect.
      mount('', dst, '', MS.BIND | MS.REMOUNT | MS.RDONLY, '');
      expect(() => fs.writeFileSync(path.join(dst, 'new'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    } finally {
      umount2(dst, MNT_DETACH);
    }
    expect(fs.existsSync(path.join(dst, 'hello'))).toBe(false);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${dst} `);
  });

  test('errors carry the errno name and the arguments', () => {
    const dst = path.join(dir, 'dst');
    fs.mkdirSync(dst);
    expectErrno(() => mount('/nonexistent-ferry-src', dst, '', MS.BIND, ''), 'ENOENT',
      new RegExp(`^mount /nonexistent-ferry-src -> ${dst}: No such file or directory$`));
    expectErrno(() => umount2(dst, 0), 'EINVAL', new RegExp(`^umount2 ${dst}: Invalid argument$`));
  });

  test('umount2Async unmounts on the threadpool and rejects with the errno error', async () => {
    const { src, dst } = sourceAndTarget();
    mount(src, dst, '', MS.BIND, '');
    mount(src, dst, '', MS.BIND, ''); // stacked twice, as unmountAllAsync must handle
    await umount2Async(dst, MNT_DETACH);
    expect(fs.readFileSync(path.join(dst, 'hello'), 'utf8')).toBe('from src'); // the lower one is still there
    await unmountAllAsync(dst);
    expect(fs.existsSync(path.join(dst, 'hello'))).toBe(false);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${dst} `);
    const err = await umount2Async(dst, 0).catch((e: unknown) => e);
    expect(isErrnoError(err, 'EINVAL')).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^umount2 ${dst}: Invalid argument$`));
    await expect(unmountAllAsync(path.join(dir, 'missing'))).resolves.toBeUndefined();
  });
});

describe('eventfd and watchFd', () => {
  function writeCounter(fd: number, value: bigint): void {
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(value);
    fs.writeSync(fd, buf);
  }

  test('values written to an eventfd reach the callback; none after stop()', async () => {
    const fd = eventfd();
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    const seen: bigint[] = [];
    const watcher = watchFd(fd, (v) => seen.push(v));
    try {
      writeCounter(fd, 5n);
      for (let i = 0; i < 200 && seen.length === 0; i++) await sleep(10);
      expect(seen).toEqual([5n]);
      writeCounter(fd, 2n ** 40n);
      for (let i = 0; i < 200 && seen.length === 1; i++) await sleep(10);
      expect(seen).toEqual([5n, 2n ** 40n]);
    } finally {
      watcher.stop();
    }
    watcher.stop(); // idempotent
    writeCounter(fd, 9n);
    await sleep(100);
    expect(seen).toEqual([5n, 2n ** 40n]);
    fs.closeSync(fd);
  });

  test('a watcher does not keep the process alive, and exit with a live watcher is clean', () => {
    const out = runBundled('watch-exit', `
      import { eventfd, watchFd } from './native';
      const fd = eventfd();
      watchFd(fd, (v) => console.log('value ' + v));
      const buf = Buffer.alloc(8);
      buf.writeBigUInt64LE(3n);
      require('fs').writeSync(fd, buf);
      setTimeout(() => console.log('timer done'), 200);
    `, 10000);
    expect(out).toBe('value 3\ntimer done\n');
  });
});

describe('createFileFrom (staging: one threadpool job per file, bytes copied in the kernel)', () => {
  let dir: string;
  let src: string;
  let srcFd: number;
  const content = Buffer.alloc(3 * (1 << 20) + 123);
  beforeAll(() => {
    for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 12)) & 0xff;
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-copy-'));
    src = path.join(dir, 'archive');
    fs.writeFileSync(src, content);
    srcFd = fs.openSync(src, 'r');
  });
  afterEach(() => {
    fs.closeSync(srcFd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const slice = (off: number, len: number) => content.subarray(off, off + len);

  test('same filesystem: copy_file_range, from an offset, mode set whatever the umask', async () => {
    const out = path.join(dir, 'out');
    const old = process.umask(0o077);
    try {
      await expect(createFileFrom(out, 0o755, srcFd, 4096 + 1, 2 << 20)).resolves.toEqual({ copied: 2 << 20, method: 'copy_file_range' });
    } finally {
      process.umask(old);
    }
    expect(fs.readFileSync(out).equals(slice(4097, 2 << 20))).toBe(true);
    expect(fs.statSync(out).mode & 0o7777).toBe(0o755);
    // The source's own file position is never used (concurrent jobs share the fd).
    expect(fs.readSync(srcFd, Buffer.alloc(4), 0, 4, null)).toBe(4);
  });

  test('across filesystems copy_file_range says EXDEV (real) and sendfile copies', async () => {
    const shm = fs.mkdtempSync('/dev/shm/ferry-copy-');
    try {
      // Only meaningful when os.tmpdir() and /dev/shm are different filesystems (here: ext4 and tmpfs).
      expect(fs.statSync(shm).dev).not.toBe(fs.statSync(dir).dev);
      const out = path.join(shm, 'out');
      await expect(createFileFrom(out, 0o600, srcFd, 512, content.length - 512)).resolves.toEqual({ copied: content.length - 512, method: 'sendfile' });
      expect(fs.readFileSync(out).equals(slice(512, content.length - 512))).toBe(true);
    } finally {
      fs.rmSync(shm, { recursive: true, force: true });
    }
  });

  test.each(['EXDEV', 'EINVAL', 'ENOSYS', 'EOPNOTSUPP'] as const)('copy_file_range failing with %s falls back to sendfile', async (errno) => {
    const out = path.join(dir, 'out');
    await expect(createFileFrom(out, 0o644, srcFd, 1000, 1 << 20, { failFirstCopyWith: errno })).resolves.toEqual({ copied: 1 << 20, method: 'sendfile' });
    expect(fs.readFileSync(out).equals(slice(1000, 1 << 20))).toBe(true);
  });

  test('without copy_file_range and sendfile: pread + write, in 1 MiB pieces', async () => {
    const out = path.join(dir, 'out');
    await expect(createFileFrom(out, 0o644, srcFd, 7, content.length - 7, { methods: ['read-write'] }))
      .resolves.toEqual({ copied: content.length - 7, method: 'read-write' });
    expect(fs.readFileSync(out).equals(slice(7, content.length - 7))).toBe(true);
  });

  test('no method left after a failure: ENOSYS, not a silent empty file', async () => {
    const err = await createFileFrom(path.join(dir, 'out'), 0o644, srcFd, 0, 10, { methods: ['copy_file_range'], failFirstCopyWith: 'EXDEV' }).catch((e: unknown) => e);
    expect(isErrnoError(err, 'ENOSYS')).toBe(true);
  });

  test('a source that ends early: copied says how far it got', async () => {
    for (const methods of [undefined, ['sendfile'], ['read-write']] as const) {
      const out = path.join(dir, `out-${methods?.[0] ?? 'all'}`);
      const r = await createFileFrom(out, 0o644, srcFd, content.length - 100, 5000, methods ? { methods: [...methods] } : {});
      expect(r.copied).toBe(100);
      expect(fs.readFileSync(out).equals(slice(content.length - 100, 100))).toBe(true);
    }
  });

  test('never an existing file, never through a symlink: EEXIST / ELOOP from open, targets untouched', async () => {
    const existing = path.join(dir, 'existing');
    fs.writeFileSync(existing, 'keep');
    const target = path.join(dir, 'target');
    fs.writeFileSync(target, 'keep too');
    const link = path.join(dir, 'link');
    fs.symlinkSync(target, link);
    const e1 = await createFileFrom(existing, 0o644, srcFd, 0, 10).catch((e: unknown) => e);
    expect(isErrnoError(e1, 'EEXIST')).toBe(true);
    expect((e1 as ErrnoError).syscall).toBe('open');
    const e2 = await createFileFrom(link, 0o644, srcFd, 0, 10).catch((e: unknown) => e);
    expect(isErrnoError(e2, 'EEXIST') || isErrnoError(e2, 'ELOOP')).toBe(true);
    expect(fs.readFileSync(existing, 'utf8')).toBe('keep');
    expect(fs.readFileSync(target, 'utf8')).toBe('keep too');
  });

  test('bad arguments are refused before any system call', () => {
    expect(() => createFileFrom(path.join(dir, 'x'), 0o644, -1, 0, 1)).toThrow(RangeError);
    expect(() => createFileFrom(path.join(dir, 'x'), 0o644, srcFd, -1, 1)).toThrow(RangeError);
    expect(() => createFileFrom(path.join(dir, 'x'), 0o644, srcFd, 0, 1, { methods: [] })).toThrow(RangeError);
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
  });
});
