// The shim process itself, as containerd sees it (issue 2 points 6, 10, 13): `start` prints only
// the address and returns at once with the daemon fully detached from its stdio; the daemon
// keeps no bundle as its working directory; its log lines show up readable in containerd's log;
// and a daemon driven directly over its socket (Connect, Shutdown) exits and removes its socket.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { REPO_ROOT } from '../helpers/containerd';
import { ctrRunDetached, expectExit, isGoShim, lanes, shimFootprint, uniqueId, useContainerd } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import { TtrpcClient } from '../../src/protocol/ttrpc/client';
import { ConnectRequest, ConnectResponse, ShutdownRequest } from '../../api/gen/containerd/task/v2/shim';

jest.setTimeout(120000);

const SHIM = path.join(REPO_ROOT, 'shim', 'containerd-shim-ferry-v2');
const fdTarget = (pid: number, fd: number) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`);

describe.each(lanes().filter((l) => !isGoShim(l)))('shim process [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`the daemon is detached from start's stdio, lives in /, and logs into containerd's log [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('detached');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
    const f = await shimFootprint(c, id);
    for (const fd of [0, 1, 2]) expect(fdTarget(f.shimPid, fd)).toBe('/dev/null');
    expect(fs.readlinkSync(`/proc/${f.shimPid}/cwd`)).toBe('/');
    // The daemon is its own session leader: no terminal or process group ties it to containerd.
    const stat = fs.readFileSync(`/proc/${f.shimPid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[3])).toBe(f.shimPid); // session id
    // containerd copies the bundle's log FIFO into its own log: our logrus-format lines are there.
    await waitFor(() => /level=info msg="shim started"[^\n]*runtime=io.containerd.ferry.v2/.test(c.log()), 5000);
    expect(c.log()).toMatch(new RegExp(`msg="shim started" namespace=${c.namespace} pid=${f.shimPid} runtime=io.containerd.ferry.v2`));
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'KILL', id]), 0);
  });
});

describe('shim start, by hand', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-start-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('start prints only the address, returns at once, and the daemon answers, then exits on Shutdown', async () => {
    const bundle = path.join(dir, 'bundle');
    fs.mkdirSync(bundle);
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
    const address = path.join(dir, 'containerd.sock');
    const id = `by-hand-${process.pid}`;
    const t0 = Date.now();
    // containerd reads start's stdout and stderr as one stream, until both close.
    const child = spawn(SHIM, ['-namespace', 'ferry-by-hand', '-address', address, '-id', id, 'start'], {
      cwd: bundle, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TTRPC_ADDRESS: `${address}.ttrpc` },
    });
    child.stdin.end();
    let combined = '';
    child.stdout.on('data', (d) => { combined += d; });
    child.stderr.on('data', (d) => { combined += d; });
    const closed = Promise.all([
      new Promise((r) => child.stdout.on('close', r)),
      new Promise((r) => child.stderr.on('close', r)),
      new Promise((r) => child.on('exit', r)),
    ]);
    await closed;
    const elapsed = Date.now() - t0;
    expect(child.exitCode).toBe(0);
    expect(combined).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(elapsed).toBeLessThan(5000); // the daemon never held start's stdio open
    expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(combined);

    const socket = combined.replace('unix://', '');
    const st = fs.statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(socket)).mode & 0o077).toBe(0);

    const client = await TtrpcClient.connect(socket, 5000);
    let shimPid: number;
    try {
      const meta = { metadata: { 'containerd-namespace-ttrpc': 'ferry-by-hand' } };
      const res = ConnectResponse.decode(await client.call('containerd.task.v2.Task', 'Connect', ConnectRequest.encode({ id }).finish(), meta));
      shimPid = res.shimPid;
      expect(shimPid).toBeGreaterThan(0);
      expect(res.taskPid).toBe(0);
      // The same daemon answers task API v3.
      const v3 = ConnectResponse.decode(await client.call('containerd.task.v3.Task', 'Connect', ConnectRequest.encode({ id }).finish(), meta));
      expect(v3.shimPid).toBe(shimPid);
      // The bundle can go away under the daemon (containerd removes bundles).
      fs.rmSync(bundle, { recursive: true, force: true });
      await client.call('containerd.task.v2.Task', 'Shutdown', ShutdownRequest.encode({ id, now: false }).finish(), meta);
    } finally {
      client.close();
    }
    await waitFor(() => !fs.existsSync(`/proc/${shimPid}`), 10000);
    expect(fs.existsSync(`/proc/${shimPid}`)).toBe(false);
    expect(fs.existsSync(socket)).toBe(false);
  });
});
