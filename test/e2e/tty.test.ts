// Issue 3, point 2: terminals. `ctr run -t` and `ctr task exec -t` run inside a real terminal
// (node-pty), as a user would type into them: a command's answer comes back through the
// container's pty, resizing our terminal reaches the container (ctr → ResizePty), and Ctrl-D
// ends the shell with its exit status. Also run against the Go shim.
import type { IPty } from 'node-pty';
import { Containerd } from '../helpers/containerd';
import { ctrRunDetached, expectExit, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { sleep } from '../helpers/procfs';

jest.setTimeout(120000);

// eslint-disable-next-line @typescript-eslint/no-var-requires
const pty = require('node-pty') as typeof import('node-pty');

interface Terminal {
  term: IPty;
  output: () => string;
  /** Waits until the output (since `from`) matches; returns the match. */
  expectOutput: (re: RegExp, from?: number, timeoutMs?: number) => Promise<RegExpMatchArray>;
  exited: Promise<{ exitCode: number; signal?: number }>;
}

/** Runs ctr in a fresh terminal of the given size. */
function ctrInTerminal(c: Containerd, args: string[], cols = 80, rows = 24): Terminal {
  const term = pty.spawn(c.ctrPath, ['--address', c.address, '--namespace', c.namespace, ...args], {
    cols, rows, name: 'xterm', env: { ...process.env, TERM: 'xterm' } as Record<string, string>,
  });
  // Output passes two terminals (the container's and ours), each turning \n into \r\n: the
  // text is matched with line ends normalised to \n.
  let raw = '';
  term.onData((d) => { raw += d; });
  const text = () => raw.replace(/\r*\n/g, '\n');
  const exited = new Promise<{ exitCode: number; signal?: number }>((resolve) => term.onExit(resolve));
  const expectOutput = async (re: RegExp, from = 0, timeoutMs = 15000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = text().slice(from).match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`terminal never showed ${re}; it shows:\n${JSON.stringify(raw)}\n--- containerd log ---\n${c.logTail(20)}`);
      await sleep(30);
    }
  };
  return { term, output: text, expectOutput, exited };
}

/** Types a line and waits for the shell's answer line matching `answer`. */
async function typeAndRead(t: Terminal, line: string, answer: RegExp): Promise<RegExpMatchArray> {
  const from = t.output().length;
  t.term.write(`${line}\r`);
  return t.expectOutput(answer, from);
}

describe.each(lanes())('tty [$name]', (lane) => {
  const containerd = useContainerd(lane);
  const terminals: Terminal[] = [];
  afterEach(() => {
    for (const t of terminals.splice(0)) { try { t.term.kill('SIGKILL'); } catch { /* gone */ } }
  });

  async function shellSession(t: Terminal): Promise<void> {
    terminals.push(t);
    // The prompt shows once the shell runs on the container's terminal. (busybox's line editor
    // asks for the cursor position and redraws; only the prompt text itself is checked.)
    await t.expectOutput(/\/ # /);
    await typeAndRead(t, 'echo $((6*7))', /\n42\n/);
    // The terminal we started with (100x30) reached the container.
    await typeAndRead(t, 'stty size', /\n30 100\n/);
    // Resize ours: ctr gets SIGWINCH and calls ResizePty.
    t.term.resize(132, 43);
    await sleep(300);
    await typeAndRead(t, 'stty size', /\n43 132\n/);
    await typeAndRead(t, '[ -t 0 ] && [ -t 1 ] && echo "on a tty: $(tty)"', /on a tty: \/dev\/(pts\/\d+|console)/);
    // Ctrl-D ends the shell; its status is that of the last command.
    await typeAndRead(t, 'false', /\n(\x1b\[[0-9;]*[A-Za-z])*\/ # /);
    t.term.write('\x04');
  }

  test(`ctr run -t: type, read, resize, Ctrl-D brings the exit status back [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('tty-run');
    const t = ctrInTerminal(c, ['run', '-t', '--rm', '--runtime', lane.runtime, c.image!.name, id, 'sh'], 100, 30);
    await shellSession(t);
    const exit = await t.exited;
    expect(exit.exitCode).toBe(1);
  });

  test(`ctr task exec -t: the same through an exec'd shell, the init untouched [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('tty-exec');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '100000']), 0);
    await waitForStatus(c, id, 'RUNNING');
    const t = ctrInTerminal(c, ['task', 'exec', '-t', '--exec-id', 'sh1', id, 'sh'], 100, 30);
    await shellSession(t);
    expect((await t.exited).exitCode).toBe(1);
    // A second tty exec runs a command and exits with its status.
    const t2 = ctrInTerminal(c, ['task', 'exec', '-t', '--exec-id', 'sh2', id, 'sh', '-c', 'echo tty-exec-$((3*4)); exit 6']);
    terminals.push(t2);
    await t2.expectOutput(/tty-exec-12\n/);
    expect((await t2.exited).exitCode).toBe(6);
    expect((await waitForStatus(c, id, 'RUNNING')).status).toBe('RUNNING');
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`a tty task's output is complete when it exits at once [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('tty-burst');
    const t = ctrInTerminal(c, ['run', '-t', '--rm', '--runtime', lane.runtime, c.image!.name, id, 'sh', '-c', 'seq 1 3000; exit 3']);
    terminals.push(t);
    expect((await t.exited).exitCode).toBe(3);
    expect(t.output()).toMatch(/\n2999\n3000\n/);
  });

  test(`ResizePty through the API: init resized, a stopped exec refused, an unknown exec NotFound [${lane.name}]`, async () => {
    const c = containerd();
    const { callTasks } = await import('../helpers/containerd-api');
    const id = uniqueId('tty-resize');
    const t = ctrInTerminal(c, ['run', '-t', '--rm', '--runtime', lane.runtime, c.image!.name, id, 'sh']);
    terminals.push(t);
    await t.expectOutput(/\/ # /);
    // ctr sends its own terminal's size right after Start; let that land before ours.
    await sleep(1000);
    await callTasks(c, 'resizePty', { containerId: id, width: 91, height: 21 });
    await typeAndRead(t, 'stty size', /\n21 91\n/);
    await expect(callTasks(c, 'resizePty', { containerId: id, execId: 'nope', width: 90, height: 20 })).rejects.toMatchObject({ code: 5 });
    // An exec that has exited but is not deleted yet (with -d, ctr leaves it).
    const d = await c.ctr(['task', 'exec', '-d', '--exec-id', 'done1', id, 'true']);
    expectExit(c, d, 0);
    await sleep(500);
    await expect(callTasks(c, 'resizePty', { containerId: id, execId: 'done1', width: 90, height: 20 }))
      .rejects.toMatchObject({ details: expect.stringMatching(/cannot resize a stopped container/) });
    t.term.write('exit 2\r');
    expect((await t.exited).exitCode).toBe(2);
  });
});
