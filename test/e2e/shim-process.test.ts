// The shim process itself, as containerd sees it (issue 2 points 6, 10, 13): `start` prints only
// the address and returns at once with the daemon fully detached from its stdio; the daemon
// keeps no bundle as its working directory; its log lines show up readable in containerd's log;
// and a daemon driven directly over its socket (Connect, Shutdown) exits and removes its socket.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Containerd, REPO_ROOT, startContainerd } from '../helpers/containerd';
import {
  ctrRunDetached, expectExit, isGoShim, lanes, leftovers, shimFootprint, taskRow, uniqueId, useContainerd,
} from '../helpers/lanes';
import { isRunning, waitFor } from '../helpers/procfs';
import { TtrpcClient } from '../../src/protocol/ttrpc/client';
import { ConnectRequest, ConnectResponse, DeleteResponse, ShutdownRequest } from '../../api/gen/containerd/task/v2/shim';
import { listenUnix } from '../../src/sys/native';
import { CLEANED_RECORD, cleanedRecordLine, deleteActionResponse } from '../../src/shim-actions/cleaned-record';

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

// The launcher answers `delete` itself when the daemon left a cleaned-bundle record
// (src/shim-actions/cleaned-record.ts); otherwise node runs the full delete. FERRY_NODE_OPTIONS
// with a flag node refuses shows which way it went: node would fail, the shell path does not.
describe('shim delete, by hand', () => {
  let dir: string;
  let bundle: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-delete-'));
    bundle = path.join(dir, 'bundle');
    fs.mkdirSync(bundle);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const runDelete = (args: string[], env: Record<string, string> = {}) => new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) => {
    const child = spawn(SHIM, args, { cwd: bundle, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
  const deleteArgs = (id: string) => ['-namespace', 'ferry-by-hand', '-address', '/run/ferry-by-hand.sock', '-publish-binary', '/bin/false', '-id', id, '-bundle', bundle, 'delete'];
  const noNode = { FERRY_NODE_OPTIONS: '--no-such-node-flag' };
  const record = (pid: number, socket: string, at: Date) => {
    const response = deleteActionResponse(4242, at);
    fs.writeFileSync(path.join(bundle, CLEANED_RECORD), cleanedRecordLine(response, pid, socket));
    return Buffer.from(response);
  };

  test('with a record and the daemon gone, the launcher prints the recorded DeleteResponse without node', async () => {
    const at = new Date('2026-12-01T12:00:00.123Z');
    const expected = record(999999999, path.join(dir, 'gone.sock'), at);
    const r = await runDelete(deleteArgs(`del-${process.pid}`), noNode);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.equals(expected)).toBe(true);
    const res = DeleteResponse.decode(r.stdout);
    expect(res).toMatchObject({ pid: 4242, exitStatus: 137 });
    expect(res.exitedAt).toEqual({ seconds: Math.floor(at.getTime() / 1000), nanos: 123_000_000 });
  });

  test('with a record and a live daemon still on its socket (a group), the socket is kept and node not started', async () => {
    const socket = path.join(dir, 'live.sock');
    fs.writeFileSync(socket, '');
    const expected = record(process.pid, socket, new Date());
    const r = await runDelete(['-id=del-live', `-bundle=${bundle}`, '-debug', 'delete'], noNode);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(expected)).toBe(true);
    expect(fs.existsSync(socket)).toBe(true);
  });

  test('a socket left by a dead daemon: node runs the full delete and removes it', async () => {
    const socket = path.join(dir, 'stale.sock');
    // A dead daemon's socket: the file stays, nobody listens.
    fs.closeSync(listenUnix(socket));
    expect(fs.existsSync(socket)).toBe(true);
    fs.writeFileSync(path.join(bundle, 'address'), `unix://${socket}`);
    record(999999999, socket, new Date());
    const failing = await runDelete(deleteArgs(`del-stale-${process.pid}`), noNode);
    expect(failing.code).not.toBe(0); // node was started, and refused the flag
    const r = await runDelete(deleteArgs(`del-stale-${process.pid}`));
    expect(r.code).toBe(0);
    expect(DeleteResponse.decode(r.stdout)).toMatchObject({ exitStatus: 137 });
    expect(fs.existsSync(socket)).toBe(false);
  });

  test('no record, a damaged record, or arguments the launcher does not parse: node answers', async () => {
    const id = `del-none-${process.pid}`;
    expect((await runDelete(deleteArgs(id), noNode)).code).not.toBe(0);
    fs.writeFileSync(path.join(bundle, CLEANED_RECORD), 'not-an-escape 1 /nonexistent\n');
    expect((await runDelete(deleteArgs(id), noNode)).code).not.toBe(0);
    record(999999999, path.join(dir, 'gone.sock'), new Date());
    expect((await runDelete([...deleteArgs(id), 'extra'], noNode)).code).not.toBe(0);
    expect((await runDelete(['-unknown-flag', ...deleteArgs(id)], noNode)).code).not.toBe(0);
    // The same arguments with node allowed: the full delete answers like the Go shim.
    const r = await runDelete(deleteArgs(id));
    expect(r.code).toBe(0);
    expect(DeleteResponse.decode(r.stdout)).toMatchObject({ exitStatus: 137 });
  });
});

// With a real containerd: one node process per container — `start`, which goes on as the daemon
// — and none for the `delete` containerd runs after each shim disconnect when the daemon
// cleaned up (ordinary removal, and a group member's removal while its daemon serves others).
// A --require hook in every node the shim starts records each one's action; containerd's debug
// log shows that it did run `delete` each time.
describe.each(lanes().filter((l) => !isGoShim(l)))('node starts per container [$name]', (lane) => {
  let c: Containerd | undefined;
  let hookDir: string;
  let nodeLog: string;
  beforeAll(async () => {
    hookDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-node-hook-'));
    nodeLog = path.join(hookDir, 'node-starts.log');
    const hook = path.join(hookDir, 'hook.js');
    // The launcher gives `start` its action in FERRY_SHIM_ACTION, not in argv.
    fs.writeFileSync(hook, `require('fs').appendFileSync(${JSON.stringify(nodeLog)}, [...process.argv.slice(2), process.env.FERRY_SHIM_ACTION || ''].join(' ') + '\\n');\n`);
    c = await startContainerd({ version: lane.containerd, grpcShim: lane.grpc, env: { FERRY_NODE_OPTIONS: `--require=${hook}` } });
  }, 120000);
  afterAll(async () => {
    await c?.stop();
    fs.rmSync(hookDir, { recursive: true, force: true });
  }, 120000);

  /** The actions node was started for with this container id ('start', 'delete', '' = none). */
  const nodeActions = (id: string) => fs.readFileSync(nodeLog, 'utf8').split('\n')
    .map((l) => l.split(' ')).filter((w) => w.includes(id))
    .map((w) => w.slice(-2).find((a) => a === 'start' || a === 'delete') ?? '');
  const deletesRun = (id: string) => c!.log().split('\n').filter((l) => l.includes('cleaning up after shim disconnected') && l.includes(id)).length;
  const deleteFailures = (id: string) => c!.log().split('\n').filter((l) => /failed to delete|cleanup warnings|failed to clean up/.test(l) && l.includes(id));

  test(`ctr run --rm: one node process (start, then the daemon); containerd runs delete, node does not [${lane.name}]`, async () => {
    const id = uniqueId('cleandel');
    const r = await c!.ctr(['run', '--rm', '--runtime', lane.runtime, c!.image!.name, id, 'echo', 'hi']);
    expectExit(c!, r, 0);
    expect(r.stdout).toBe('hi\n');
    // containerd logs this line and then runs the shim's `delete`; ctr returns after it.
    expect(await waitFor(() => deletesRun(id) > 0, 5000)).toBe(true);
    expect(deleteFailures(id)).toEqual([]);
    // One node process for the whole container: `start`, which went on as its daemon.
    expect(nodeActions(id)).toEqual(['start']);
    expect(fs.existsSync(c!.bundleDir(id))).toBe(false);
  });

  test(`a group member removed while its daemon serves another: no node for delete; the daemon stays [${lane.name}]`, async () => {
    const group = uniqueId('cleangrp');
    const label = ['--label', `io.containerd.runc.v2.group=${group}`];
    const a = uniqueId('cleandel-a');
    const b = uniqueId('cleandel-b');
    expectExit(c!, await c!.ctr(['run', '-d', '--runtime', lane.runtime, ...label, c!.image!.name, a, 'sleep', '1000']), 0);
    const f = await shimFootprint(c!, a);
    const r = await c!.ctr(['run', '--rm', '--runtime', lane.runtime, ...label, c!.image!.name, b, 'echo', 'hi']);
    expectExit(c!, r, 0);
    expect(await waitFor(() => deletesRun(b) > 0, 5000)).toBe(true);
    expect(deleteFailures(b)).toEqual([]);
    expect(nodeActions(b)).toEqual(['start']); // it joined a's daemon
    expect(isRunning(f.shimPid)).toBe(true);
    expect(f.socket && fs.existsSync(f.socket)).toBeTruthy();
    expect(await taskRow(c!, a)).toMatchObject({ status: 'RUNNING' });
    expectExit(c!, await c!.ctr(['task', 'rm', '-f', a]), 0);
    expect(await waitFor(() => deletesRun(a) > 0, 5000)).toBe(true);
    expect(deleteFailures(a)).toEqual([]);
    expect(nodeActions(a)).toEqual(['start']);
    expect(await leftovers(f)).toEqual([]);
    expectExit(c!, await c!.ctr(['container', 'rm', a]), 0);
  });
});
