// Issue 11, item 2: containerd's client may ask for a terminal in the exec request's IO while
// the process spec it sends says `terminal: false`; the Go shim then sets the spec's terminal
// from the request (`spec.Terminal = r.Terminal`). ctr cannot send such a request, so the test
// calls Tasks.Exec itself and reads the exec's stdout FIFO: every run's output must be complete,
// to its last number. FERRY_E2E_SOAK=1 (make soak) runs the 100 execs; make test runs 10.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { callTasks } from '../helpers/containerd-api';
import type { Containerd } from '../helpers/containerd';
import { ctrRunDetached, expectExit, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';

jest.setTimeout(900000);

const RUNS = process.env.FERRY_E2E_SOAK ? 100 : 10;
const LAST = 1000000;
const PROCESS_SPEC_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
// seq's one line; the terminal turns its final \n into \r\n (ONLCR).
const EXPECTED = Buffer.from(`${Array.from({ length: LAST }, (_, i) => i + 1).join(' ')}\r\n`);

/**
 * Tasks.Exec with `terminal: true` in the request and `terminal: false` in the spec; returns
 * what the exec wrote to its stdout FIFO (read until the shim closed it) and its exit status.
 */
async function execWithTerminalFromIO(c: Containerd, id: string, execId: string, args: string[], dir: string): Promise<{ output: Buffer; exitStatus: number }> {
  const fifo = path.join(dir, `${execId}-stdout`);
  execFileSync('mkfifo', [fifo]);
  // Opened before the shim opens its end (a blocking open on its side must find a reader);
  // read only once Start returned, when the shim holds the write end: EOF then means it closed.
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  let reader: net.Socket | undefined;
  try {
    const spec = { args, cwd: '/', env: ['PATH=/bin:/usr/bin'], user: { uid: 0, gid: 0 }, terminal: false };
    await callTasks(c, 'exec', {
      containerId: id, execId, terminal: true, stdout: fifo,
      spec: { typeUrl: PROCESS_SPEC_TYPE, value: Buffer.from(JSON.stringify(spec)) },
    });
    const waited = callTasks(c, 'wait', { containerId: id, execId }, 120000);
    await callTasks(c, 'start', { containerId: id, execId });
    const chunks: Buffer[] = [];
    reader = new net.Socket({ fd, readable: true, writable: false });
    const ended = new Promise<void>((resolve, reject) => {
      reader!.on('data', (b: Buffer) => chunks.push(b));
      reader!.once('end', resolve);
      reader!.once('error', reject);
    });
    const { exitStatus } = await waited;
    await ended;
    await callTasks(c, 'deleteProcess', { containerId: id, execId });
    return { output: Buffer.concat(chunks), exitStatus };
  } finally {
    if (reader) reader.destroy();
    else fs.closeSync(fd);
    fs.rmSync(fifo, { force: true });
  }
}

describe.each(lanes())('exec with a terminal from the IO only [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let dir: string;
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-exec-tty-')); });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test(`${RUNS} execs of seq -s " " ${LAST} with a terminal asked for in the IO only: each output complete [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('exectty');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '100000']), 0);
    await waitForStatus(c, id, 'RUNNING');
    const bad: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const { output, exitStatus } = await execWithTerminalFromIO(c, id, `seq${i}`, ['sh', '-c', `seq -s " " ${LAST}`], dir);
      if (exitStatus !== 0 || !output.equals(EXPECTED)) {
        bad.push(`run ${i}: exit ${exitStatus}, ${output.length} of ${EXPECTED.length} bytes, ends ${JSON.stringify(output.subarray(-40).toString())}`);
      }
    }
    expect(bad).toEqual([]);
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });
});
