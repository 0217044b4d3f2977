// A process's output through PipeIO into a real FIFO read the way containerd's client reads it
// (pkg/cio: readers opened from goroutines of their own, closed by Task.Delete as soon as the
// task's exit has reached the client). Two ways output was lost: the shim wrote and closed the
// FIFO before the client's reader had opened it (the bytes died with the pipe), and the exit
// was made known while the FIFO still held bytes the reader had not taken.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PipeIO } from '../../src/io/pipe-io';
import { mkfifo, queuedBytes } from '../../src/sys/native';
import { openWhenWritten, readNow } from '../helpers/fifo-reader';

const { O_RDONLY, O_NONBLOCK } = fs.constants;

let dir: string;
const ios: PipeIO[] = [];
const children: ChildProcess[] = [];
const fds: number[] = [];

beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-delivery-')); });
afterEach(() => {
  // Each "container" is a process group: what it left behind goes with it.
  for (const c of children.splice(0)) { try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ } }
  for (const io of ios.splice(0)) io.close();
  for (const fd of fds.splice(0)) { try { fs.closeSync(fd); } catch { /* closed */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

function fifo(name: string): string {
  const p = path.join(dir, name);
  mkfifo(p);
  return p;
}

/** Runs `script` as the "container" with the IO's stdio, as runc would; resolves at its exit. */
function runContainer(io: PipeIO, script: string): Promise<number | null> {
  const child = spawn('sh', ['-c', script], { stdio: io.childStdio(), detached: true });
  children.push(child);
  io.closeChildEnds();
  io.start();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A reader as the client's: non-blocking, read with readNow. */
function openReader(p: string): number {
  const fd = fs.openSync(p, O_RDONLY | O_NONBLOCK);
  fds.push(fd);
  return fd;
}

test('output written before the client opened its reader still reaches it', async () => {
  const out = fifo('late-stdout');
  const io = PipeIO.create({ stdin: '', stdout: out, stderr: '', terminal: false });
  ios.push(io);
  expect(await runContainer(io, 'echo hi')).toBe(0);
  await sleep(100); // the process is long gone when the client's reader comes
  // A blocking open (on the threadpool), as the client's goroutine does: it returns once the
  // shim opens its end, which it may only do now that a reader is there.
  const handle = await openWhenWritten(out, 3000);
  try {
    expect((await handle.readFile()).toString()).toBe('hi\n');
  } finally {
    await handle.close();
  }
  await io.waitCopied(1000);
});

test('outputDelivered waits for a slow reader to take every byte, then the FIFO closes', async () => {
  const out = fifo('slow-stdout');
  const reader = openReader(out);
  const io = PipeIO.create({ stdin: '', stdout: out, stderr: '', terminal: false });
  ios.push(io);
  const size = 48 * 1024; // fits the FIFO's 64 KiB: the process can exit before anything is read
  expect(await runContainer(io, `head -c ${size} /dev/zero`)).toBe(0);
  let got = 0;
  let delivered = false;
  const delivery = io.outputDelivered(1000).then(() => {
    delivered = true;
  });
  // 4 KiB every 5 ms: slower than the shim, never idle for long enough to count as gone.
  while (!delivered) {
    got += readNow(reader, 4096).length;
    await sleep(5);
  }
  await delivery;
  expect(got).toBe(size); // nothing was left for a reader closed at this moment
  // ...and the shim has closed its end: EOF.
  expect(readNow(reader).length).toBe(0);
});

test('a reader that takes nothing holds the exit no longer than the stall limit (100 ms)', async () => {
  const out = fifo('idle-stdout');
  const reader = openReader(out);
  const io = PipeIO.create({ stdin: '', stdout: out, stderr: '', terminal: false });
  ios.push(io);
  expect(await runContainer(io, 'echo unread')).toBe(0);
  const t0 = Date.now();
  await io.outputDelivered(1000);
  const waited = Date.now() - t0;
  expect(waited).toBeGreaterThanOrEqual(90); // it did wait for the reader...
  expect(waited).toBeLessThan(1000); // ...but not for ever
  expect(queuedBytes(reader)).toBe(7);
  expect(readNow(reader).toString()).toBe('unread\n'); // kept for the reader, then EOF
  expect(readNow(reader).length).toBe(0);
});

test('time the shim itself was held up does not count against a reader that is there', async () => {
  const out = fifo('held-shim-stdout');
  const reader = openReader(out);
  // The client: another process, which reads the FIFO (its fd 3) to EOF once told to.
  const client = spawn('sh', ['-c', 'read go; cat <&3 >/dev/null'], { stdio: ['pipe', 'ignore', 'ignore', reader] });
  children.push(client);
  const io = PipeIO.create({ stdin: '', stdout: out, stderr: '', terminal: false });
  ios.push(io);
  expect(await runContainer(io, 'echo waiting')).toBe(0);
  while (queuedBytes(reader) === 0) await sleep(1);
  const delivered = io.outputDelivered(1000).then(() => queuedBytes(reader));
  await sleep(5); // the shim is looking at the FIFO now
  const until = Date.now() + 300; // held up (a full GC, say) for longer than a reader may stall
  while (Date.now() < until) { /* spin */ }
  client.stdin!.write('go\n');
  expect(await delivered).toBe(0); // it waited for the client, which took the bytes
});

test('a pipe still held by a process left behind does not hold the exit past the EOF timeout', async () => {
  const out = fifo('held-stdout');
  const reader = openReader(out);
  const io = PipeIO.create({ stdin: '', stdout: out, stderr: '', terminal: false });
  ios.push(io);
  // The background sleep keeps stdout: the pipe does not end when sh exits.
  expect(await runContainer(io, 'sleep 30 & echo started')).toBe(0);
  await sleep(50);
  expect(readNow(reader).toString()).toBe('started\n');
  const t0 = Date.now();
  await io.outputDelivered(50);
  expect(Date.now() - t0).toBeLessThan(500);
});
