// Issue 11, item 7: a terminal's pty master is held once while its process runs and released
// when the process exits and its output is drained (the Go shim shuts its console down at exit),
// not only at Delete: containerd's CRI test for TTY fd leaks (TestContainerTTYLeakAfterExit)
// counts the shim's /dev/pts/ptmx descriptors — 1 while a tty container runs, 0 after. Here: a
// tty container without stdin (CRI's "ttyOnly", created through the API) counted while it runs
// and after it exited, and 20 tty containers and tty execs that come and go in the daemon of a
// long-lived holder (io.containerd.runc.v2.group), whose descriptors are then counted.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IPty } from 'node-pty';
import { rootfsMounts } from '../helpers/checkpoint-content';
import type { Containerd } from '../helpers/containerd';
import { callTasks } from '../helpers/containerd-api';
import { ctrRunDetached, expectExit, isGoShim, lanes, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { sleep, waitFor } from '../helpers/procfs';

jest.setTimeout(300000);

// eslint-disable-next-line @typescript-eslint/no-var-requires
const pty = require('node-pty') as typeof import('node-pty');

const TTY_CONTAINERS = 20;
// A tty exec into the holder after every container under `make soak`, after every 4th otherwise.
const EXEC_EVERY = process.env.FERRY_E2E_SOAK ? 1 : 4;

/** The pty masters a process holds: its fds that are /dev/pts/ptmx. */
function ptmxFds(pid: number): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/pts/ptmx') n++; } catch { /* closed meanwhile */ }
  }
  return n;
}

/** Runs ctr in a terminal of its own (ctr -t needs one); resolves with its exit code and output. */
function ctrInTerminal(c: Containerd, args: string[]): { term: IPty; done: Promise<{ exitCode: number; output: string }> } {
  const term = pty.spawn(c.ctrPath, ['--address', c.address, '--namespace', c.namespace, ...args], {
    cols: 80, rows: 24, name: 'xterm', env: { ...process.env, TERM: 'xterm' } as Record<string, string>,
  });
  let output = '';
  term.onData((d) => { output += d; });
  const done = new Promise<{ exitCode: number; output: string }>((resolve) => term.onExit(({ exitCode }) => resolve({ exitCode, output })));
  return { term, done };
}

describe.each(lanes())('tty release [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);

  test(`after ${TTY_CONTAINERS} tty containers and ${Math.ceil(TTY_CONTAINERS / EXEC_EVERY)} tty execs have come and gone, the daemon holds no pty master [${lane.name}]`, async () => {
    const c = containerd();
    const group = uniqueId('ttyg');
    const label = ['--label', `io.containerd.runc.v2.group=${group}`];
    const holder = uniqueId('holder');
    expectExit(c, await ctrRunDetached(c, lane, holder, ['sleep', '100000'], label), 0);
    await waitForStatus(c, holder, 'RUNNING');
    const daemons = c.shimDaemons(holder);
    expect(daemons).toHaveLength(1);
    const daemon = daemons[0]!.pid;
    expect(ptmxFds(daemon)).toBe(0);

    // (Each prints after a moment: under containerd 2.1, ctr -t with the Go shim loses the output
    // of a process that exits at once; ferry's immediate-exit output is tested in tty.test.ts.)
    const seen: number[] = [];
    for (let i = 0; i < TTY_CONTAINERS; i++) {
      const id = uniqueId('tty');
      const run = ctrInTerminal(c, ['run', '-t', '--rm', '--runtime', lane.runtime, ...label, c.image!.name, id, 'sh', '-c', `sleep 0.1; echo tty-${i}; exit 3`]);
      const r = await run.done;
      expect({ i, exitCode: r.exitCode, printed: r.output.includes(`tty-${i}`), output: r.output.slice(-300) }).toMatchObject({ exitCode: 3, printed: true });
      seen.push(ptmxFds(daemon));
      if (i % EXEC_EVERY !== 0) continue;
      const exec = ctrInTerminal(c, ['task', 'exec', '-t', '--exec-id', `tty-exec-${i}`, holder, 'sh', '-c', `sleep 0.1; echo exec-${i}; exit 4`]);
      const e = await exec.done;
      expect({ i, exitCode: e.exitCode, printed: e.output.includes(`exec-${i}`), output: e.output.slice(-300) }).toMatchObject({ exitCode: 4, printed: true });
      seen.push(ptmxFds(daemon));
    }
    // The same daemon still serves the holder; it holds no master of the ones that have gone.
    expect(c.shimDaemons(holder).map((d) => d.pid)).toEqual([daemon]);
    if (isGoShim(lane)) {
      // The Go shim unregisters an exec's console at exit but leaves closing it to Go's garbage
      // collector: at most the last exec's master lingers, never more.
      expect(Math.max(...seen)).toBeLessThanOrEqual(1);
      expect(await waitFor(() => ptmxFds(daemon) <= 1, 10000, 100)).toBe(true);
    } else {
      expect(seen).toEqual(seen.map(() => 0));
      expect(await waitFor(() => ptmxFds(daemon) === 0, 10000, 100)).toBe(true);
    }

    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', holder]), 0);
    await waitForStatus(c, holder, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', holder]), 0);
    expectExit(c, await c.ctr(['container', 'rm', holder]), 0);
  });

  test(`a tty container without stdin holds one pty master while it runs, none once it exited, before Delete [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ttyonly');
    expectExit(c, await c.ctr(['container', 'create', '-t', '--runtime', lane.runtime, c.image!.name, id, 'sh', '-c', 'echo up; sleep 1000']), 0);
    const rootfs = await rootfsMounts(c, id);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ttyonly-'));
    const fifo = path.join(dir, 'stdout');
    execFileSync('mkfifo', [fifo]);
    // Opened before the shim opens its end (the Go shim's open blocks until a reader exists).
    const out = new net.Socket({ fd: fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK), readable: true, writable: false });
    let text = '';
    out.on('data', (d: Buffer) => { text += d.toString(); });
    try {
      await callTasks(c, 'create', { containerId: id, rootfs, terminal: true, stdout: fifo });
      await callTasks(c, 'start', { containerId: id });
      const daemons = c.shimDaemons(id);
      expect(daemons).toHaveLength(1);
      const daemon = daemons[0]!.pid;
      expect(await waitFor(() => text.includes('up'), 15000, 50)).toBe(true);
      // Exactly one while it runs (the CRI test's checkTTY(pid, 1)), and it stays one.
      expect(ptmxFds(daemon)).toBe(1);
      await sleep(300);
      expect(ptmxFds(daemon)).toBe(1);
      expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
      await waitForStatus(c, id, 'STOPPED');
      // Released at exit; the task is not deleted yet.
      expect(await waitFor(() => ptmxFds(daemon) === 0, 10000, 100)).toBe(true);
      expect((await callTasks(c, 'get', { containerId: id })).process?.status).toBe(3);
      await callTasks(c, 'delete', { containerId: id });
      expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    } finally {
      out.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
