// ConsoleIO against a real pty: a small Python "runc" opens a pty pair, starts a process on the
// slave and sends the master over the console socket with SCM_RIGHTS, exactly as runc does for
// --console-socket; ConsoleIO then copies it to and from real FIFOs.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConsoleIO, consoleOf } from '../../src/io/console-io';
import { getWinsize } from '../../src/sys/native';

const FAKE_RUNC = [
  'import fcntl, os, socket, subprocess, sys, termios',
  'm, s = os.openpty()',
  'def ctty():',
  '    fcntl.ioctl(0, termios.TIOCSCTTY, 0)',
  'p = subprocess.Popen(sys.argv[2:], stdin=s, stdout=s, stderr=s, start_new_session=True, preexec_fn=None if os.environ.get("NO_CTTY") else ctty)',
  'os.close(s)',
  'c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
  'c.connect(sys.argv[1])',
  'socket.send_fds(c, [b"/dev/ptmx"], [m])',
  'c.close()',
  'os.close(m)',
  'print(p.pid)',
].join('\n');

/** Runs `cmd` on a fresh pty like `runc create --console-socket`; resolves with the process pid. */
function fakeRunc(socketPath: string, cmd: string[], noCtty = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const env = noCtty ? { ...process.env, NO_CTTY: '1' } : process.env;
    const child = spawn('python3', ['-c', FAKE_RUNC, socketPath, ...cmd], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`fake runc exited ${code}`))));
  });
}

let dir: string;
const ios: ConsoleIO[] = [];
const pids: number[] = [];
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-console-test-')); });
afterEach(() => {
  for (const io of ios.splice(0)) io.close();
  for (const pid of pids.splice(0)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

function fifo(name: string): string {
  const p = path.join(dir, name);
  execFileSync('mkfifo', [p]);
  return p;
}

/** containerd's side of stdout: read the FIFO until EOF. */
function readAll(fifoPath: string): { text: () => string; ended: Promise<string> } {
  const sock = new net.Socket({ fd: fs.openSync(fifoPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK), readable: true, writable: false });
  let text = '';
  sock.on('data', (d: Buffer) => (text += d.toString()));
  return { text: () => text, ended: new Promise((resolve) => sock.once('end', () => resolve(text))) };
}

function until(check: () => boolean, timeoutMs = 10000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error('condition not met in time'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

async function startConsole(cmd: string[], withStdin: boolean, noCtty = false) {
  const stdout = fifo('stdout');
  const stdin = withStdin ? fifo('stdin') : '';
  const out = readAll(stdout);
  const io = ConsoleIO.create({ stdin, stdout, stderr: '', terminal: true });
  ios.push(io);
  const socketDir = path.dirname(io.socketPath);
  expect(fs.statSync(socketDir).mode & 0o777).toBe(0o700);
  pids.push(await fakeRunc(io.socketPath, cmd, noCtty));
  await io.receiveMaster(10000);
  expect(fs.existsSync(socketDir)).toBe(false);
  io.start();
  const input = withStdin
    ? new net.Socket({ fd: fs.openSync(stdin, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK), readable: false, writable: true })
    : null;
  return { io, out, input };
}

test('output reaches the stdout FIFO, which is closed when the process exits (EIO is the end)', async () => {
  const { io, out } = await startConsole(['sh', '-c', 'echo hello from a tty; exit 3'], false);
  expect(await out.ended).toMatch(/hello from a tty\r\n/);
  await io.waitCopied(1000);
});

test('stdin reaches the shell and its answer comes back', async () => {
  const { out, input } = await startConsole(['sh'], true);
  input!.write('echo $((6*7))\n');
  await until(() => /^42\r?$/m.test(out.text()));
  input!.write('exit\n');
  await out.ended;
  input!.destroy();
});

test('resize: the process sees the new window size', async () => {
  const { io, out, input } = await startConsole(['sh'], true);
  io.resize(33, 101);
  input!.write('stty size\n');
  await until(() => /^33 101\r?$/m.test(out.text()));
  io.resize(12, 40);
  input!.write('stty size; exit\n');
  expect(await out.ended).toMatch(/^12 40\r?$/m);
  input!.destroy();
});

test('CloseIO: once the client closed stdin, cat sees EOF (hang-up) and the output ends', async () => {
  const { io, out, input } = await startConsole(['cat'], true);
  input!.write('line one\n');
  await until(() => out.text().includes('line one'));
  input!.destroy();
  await new Promise((r) => setTimeout(r, 100));
  // The client closed its end, but without CloseIO the stdin copy must not end.
  expect(fs.existsSync(`/proc/${pids[0]}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pids[0]}/status`, 'utf8'))).toBe(true);
  io.closeStdin();
  await out.ended;
  await until(() => !fs.existsSync(`/proc/${pids[0]}`) || /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pids[0]}/status`, 'utf8')));
});

test('a process that never reads its terminal cannot block the shim (writes retry, the event loop runs)', async () => {
  const { io, out, input } = await startConsole(['sleep', '30'], true);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    // Far more than a pty's input queue holds.
    input!.write(Buffer.alloc(256 * 1024, 'x'));
    await new Promise((r) => setTimeout(r, 300));
    expect(ticks).toBeGreaterThan(20);
  } finally {
    clearInterval(timer);
  }
  io.close();
  input!.destroy();
  void out;
});

test('receiveMaster times out with a clear error when runc never sends, and removes the socket', async () => {
  const io = ConsoleIO.create({ stdin: '', stdout: '', stderr: '', terminal: true });
  ios.push(io);
  const socketDir = path.dirname(io.socketPath);
  await expect(io.receiveMaster(200)).rejects.toThrow(/failed to retrieve console master/);
  expect(fs.existsSync(socketDir)).toBe(false);
  expect(() => io.start()).toThrow(/no pty master/);
});

test('the window size lands on the pty master itself', async () => {
  const { io } = await startConsole(['sleep', '30'], false);
  io.resize(50, 132);
  // The master fd is private; read it through a second receive-free path: /proc of the process.
  const pid = pids[0]!;
  const slave = fs.openSync(`/proc/${pid}/fd/0`, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
  try {
    expect(getWinsize(slave)).toEqual({ rows: 50, cols: 132 });
  } finally {
    fs.closeSync(slave);
  }
});

test('consoleOf picks out a ConsoleIO', () => {
  const io = ConsoleIO.create({ stdin: '', stdout: '', stderr: '', terminal: true });
  ios.push(io);
  expect(consoleOf(io)).toBe(io);
  expect(consoleOf(null)).toBeNull();
});

/** pty masters this process holds (python's os.openpty opens /dev/ptmx; in a container it is /dev/pts/ptmx). */
function masters(): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try { if (/^\/dev\/(pts\/)?ptmx$/.test(fs.readlinkSync(`/proc/self/fd/${fd}`))) n++; } catch { /* closed meanwhile */ }
  }
  return n;
}

test('one descriptor of the master while the process runs, none once its output ended (no stdin)', async () => {
  const before = masters();
  const { io, out } = await startConsole(['sh', '-c', 'echo running; sleep 0.5; echo done'], false);
  await until(() => out.text().includes('running'));
  expect(masters() - before).toBe(1);
  expect(await out.ended).toMatch(/running\r\ndone\r\n/);
  await io.waitCopied(1000);
  await until(() => masters() === before);
});

test('processExited releases the master after the drain timeout when a leftover process holds the terminal', async () => {
  const before = masters();
  // sh exits at once; the background sleep keeps the terminal open (no controlling terminal,
  // so nothing hangs it up), so no EIO comes.
  const { io, out } = await startConsole(['sh', '-c', '(exec sleep 3 &); echo left-behind'], false, true);
  await until(() => out.text().includes('left-behind'));
  await new Promise((r) => setTimeout(r, 200));
  expect(masters() - before).toBe(1);
  io.processExited(300);
  await out.ended; // closing the master ends the copy and closes the FIFO
  await until(() => masters() === before);
});
