// Issue 12, hostile input (point 9): every Task RPC with hostile fields, sent straight to a real
// shim daemon (started by hand through `start`, in a bundle laid out as containerd lays them out:
// <state>/<namespace>/<id>) — ids with `/`, `..`, NUL or 10,000 bytes, bundles outside the state
// directory or through a symlink, stdio that is a regular file, a symlink, a directory or a
// device, exec specs that are not JSON processes, signals and terminal sizes out of range,
// relative paths, undecodable bodies. Each gets InvalidArgument with the field named; nothing is
// written outside the bundle (a snapshot of the whole test tree and of / before and after), the
// decoy files keep their content, and the daemon goes on answering. containerd itself checks what
// it sends, so only a direct client can send these. The daemon's diagnostics switch is checked
// here too (a heap snapshot of a real daemon).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as shim from '../../api/gen/containerd/task/v2/shim';
import { Code, FerryError } from '../../src/errors';
import { TtrpcClient } from '../../src/protocol/ttrpc/client';
import { REPO_ROOT } from '../helpers/containerd';
import { daemonReport } from '../helpers/diagnostics';
import { mountsUnder, waitFor } from '../helpers/procfs';

jest.setTimeout(120_000);

const SHIM = path.join(REPO_ROOT, 'shim', 'containerd-shim-ferry-v2');
const V2 = 'containerd.task.v2.Task';
const NS = `ferry-hostile-${process.pid}`;

interface Codec<T> { encode(m: T): { finish(): Uint8Array }; fromPartial(o: unknown): T }
const ID_METHODS: [string, Codec<unknown>][] = [
  ['State', shim.StateRequest], ['Start', shim.StartRequest], ['Delete', shim.DeleteRequest], ['Pids', shim.PidsRequest],
  ['Pause', shim.PauseRequest], ['Resume', shim.ResumeRequest], ['Checkpoint', shim.CheckpointTaskRequest],
  ['Kill', shim.KillRequest], ['Exec', shim.ExecProcessRequest], ['ResizePty', shim.ResizePtyRequest],
  ['CloseIO', shim.CloseIORequest], ['Update', shim.UpdateTaskRequest], ['Wait', shim.WaitRequest],
  ['Stats', shim.StatsRequest], ['Connect', shim.ConnectRequest], ['Shutdown', shim.ShutdownRequest],
  ['Create', shim.CreateTaskRequest],
];
const EXEC_ID_METHODS = ['State', 'Start', 'Delete', 'Kill', 'ResizePty', 'CloseIO', 'Wait', 'Exec'];
const HOSTILE_IDS = ['a/b', '..', '../../etc', 'a\0b', 'x'.repeat(10_000), '', '-lead', 'trail.', 'sp ace', 'ünï'];

/** Every path under `dir` with its type, size and mode (what "nothing written" compares). */
function tree(dir: string, skip: (p: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (skip(p)) continue;
      const st = fs.lstatSync(p);
      out.set(p, `${st.mode.toString(8)} ${st.size} ${st.isFile() ? fs.readFileSync(p, 'utf8') : ''}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

describe('hostile Task RPC fields, sent to a real daemon', () => {
  let tmp: string;
  let nsDir: string;
  let bundle: string;
  let client: TtrpcClient;
  let socket: string;
  let daemonPid: number;
  let diagDir: string;
  let fifo: string;
  let decoy: string;
  const firstId = `hostile-${process.pid}`;
  const meta = { metadata: { 'containerd-namespace-ttrpc': NS } };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-hostile-'));
    nsDir = path.join(tmp, 'state', 'io.containerd.runtime.v2.task', NS);
    bundle = path.join(nsDir, firstId);
    fs.mkdirSync(bundle, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
    diagDir = path.join(tmp, 'diag');
    fifo = path.join(tmp, 'io', 'stdout');
    fs.mkdirSync(path.dirname(fifo));
    require('node:child_process').execFileSync('mkfifo', [fifo]);
    decoy = path.join(tmp, 'decoy');
    fs.writeFileSync(decoy, 'precious\n');
    const child = spawn(SHIM, ['-namespace', NS, '-address', path.join(tmp, 'containerd.sock'), '-id', firstId, 'start'], {
      cwd: bundle, stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TTRPC_ADDRESS: path.join(tmp, 'nobody.ttrpc'), FERRY_DIAGNOSTICS_DIR: diagDir, FERRY_DIAGNOSTICS_HEAP: '1' },
    });
    child.stdin.end();
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    await new Promise((r) => child.on('close', r));
    socket = out.trim().replace('unix://', '');
    client = await TtrpcClient.connect(socket, 5000);
    daemonPid = shim.ConnectResponse.decode(await client.call(V2, 'Connect', shim.ConnectRequest.encode({ id: firstId }).finish(), meta)).shimPid;
  });

  afterAll(async () => {
    try {
      await client.call(V2, 'Shutdown', shim.ShutdownRequest.encode({ id: firstId, now: false }).finish(), meta);
    } catch { /* already gone */ }
    client.close();
    await waitFor(() => !fs.existsSync(`/proc/${daemonPid}`), 10000);
    if (fs.existsSync(`/proc/${daemonPid}`)) process.kill(daemonPid, 'SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Calls and returns the error (FerryError with the status code), or undefined on success. */
  async function call(method: string, codec: Codec<unknown>, fields: Record<string, unknown>): Promise<FerryError | undefined> {
    try {
      await client.call(V2, method, codec.encode(codec.fromPartial(fields)).finish(), meta);
      return undefined;
    } catch (err) {
      return err as FerryError;
    }
  }

  async function expectInvalid(method: string, codec: Codec<unknown>, fields: Record<string, unknown>, message: RegExp): Promise<void> {
    const err = await call(method, codec, fields);
    expect({ method, fields: JSON.stringify(fields).slice(0, 200), code: err?.code, message: err?.message }).toEqual(
      { method, fields: JSON.stringify(fields).slice(0, 200), code: Code.InvalidArgument, message: expect.stringMatching(message) });
  }

  const validBundle = (id: string) => { const b = path.join(nsDir, id); fs.mkdirSync(b, { recursive: true }); return b; };

  test('ids with /, .., NUL, 10,000 bytes, empty or odd characters: InvalidArgument in every method', async () => {
    const before = tree(tmp, (p) => p.startsWith(diagDir));
    for (const [method, codec] of ID_METHODS) {
      for (const id of HOSTILE_IDS) {
        await expectInvalid(method, codec, { id, bundle: path.join(nsDir, id) }, id === '' ? /^container id must not be empty$/ : /^container id ".*"( \(\d+ characters\))? (is longer than 76 characters|must be letters and digits)/);
      }
    }
    for (const method of EXEC_ID_METHODS) {
      const codec = ID_METHODS.find(([m]) => m === method)![1];
      for (const execId of HOSTILE_IDS.filter((x) => x !== '')) {
        await expectInvalid(method, codec, { id: 'good', execId, signal: 9 }, /^exec id ".*"( \(\d+ characters\))? (is longer than 76 characters|must be letters and digits)/);
      }
    }
    // The message stays one readable line: NUL escaped, long ids shortened.
    const nul = await call('State', shim.StateRequest, { id: 'a\0b' });
    expect(nul!.message).toBe('container id "a\\u0000b" must be letters and digits joined by single \'.\', \'_\' or \'-\'');
    const long = await call('State', shim.StateRequest, { id: 'x'.repeat(10_000) });
    expect(long!.message).toBe(`container id "${'x'.repeat(80)}…" (10000 characters) is longer than 76 characters`);
    // A good id passes the checks (and is simply not there).
    expect((await call('State', shim.StateRequest, { id: 'not-here.1' }))?.code).toBe(Code.NotFound);
    expect(tree(tmp, (p) => p.startsWith(diagDir))).toEqual(before);
  });

  test('bundles outside the state directory, through a symlink, relative, unnormalised or missing: refused before anything is written', async () => {
    const elsewhere = path.join(tmp, 'elsewhere', 'evil1');
    fs.mkdirSync(elsewhere, { recursive: true });
    fs.symlinkSync(elsewhere, path.join(nsDir, 'evil2'));
    const before = tree(tmp, (p) => p.startsWith(diagDir));
    const cases: [string, string, RegExp][] = [
      ['evil1', elsewhere, /^bundle ".*" is not in containerd's state directory/],
      ['etc', '/etc', /^bundle "\/etc" is not in containerd's state directory/],
      ['tmp', '/tmp', /is not in containerd's state directory/],
      ['evil2', path.join(nsDir, 'evil2'), /^bundle ".*" is not a directory \(a symlink\)$/],
      ['evil3', 'evil3', /must be an absolute, normalised path/],
      ['evil4', `${nsDir}/x/../evil4`, /must be an absolute, normalised path/],
      ['evil5', path.join(nsDir, 'evil5'), /does not exist/],
      ['evil6', path.join(nsDir, 'other'), /is not named after container "evil6"/],
      ['evil7', '', /must be an absolute, normalised path/],
    ];
    for (const [id, b, re] of cases) {
      await expectInvalid('Create', shim.CreateTaskRequest, { id, bundle: b, stdout: fifo }, re);
    }
    expect(tree(tmp, (p) => p.startsWith(diagDir))).toEqual(before);
    for (const f of ['/options.json', '/etc/options.json', '/tmp/options.json', path.join(elsewhere, 'options.json')]) expect(fs.existsSync(f)).toBe(false);
  });

  test('stdio that is a regular file, a symlink, a directory, a device, relative or of an unknown scheme: refused, the files untouched', async () => {
    const id = 'stdio1';
    const b = validBundle(id);
    fs.symlinkSync(decoy, path.join(tmp, 'link-to-decoy'));
    fs.symlinkSync(fifo, path.join(tmp, 'link-to-fifo'));
    const before = tree(tmp, (p) => p.startsWith(diagDir));
    const bad: [string, RegExp][] = [
      [decoy, /is a regular file; stdio must be a FIFO/],
      [path.join(tmp, 'link-to-decoy'), /is a symlink; stdio must be a FIFO/],
      [path.join(tmp, 'link-to-fifo'), /is a symlink; stdio must be a FIFO/],
      [tmp, /is a directory; stdio must be a FIFO/],
      ['/dev/null', /is not a FIFO; stdio must be a FIFO/],
      ['relative/stdout', /must be an absolute, normalised path/],
      [path.join(tmp, 'missing'), /does not exist/],
      ['http://example.com/x', /unknown STDIO scheme http/],
    ];
    for (const field of ['stdin', 'stdout', 'stderr']) {
      for (const [value, re] of bad) {
        await expectInvalid('Create', shim.CreateTaskRequest, { id, bundle: b, [field]: value }, new RegExp(`^${field} .*${re.source}`));
        await expectInvalid('Exec', shim.ExecProcessRequest, { id, execId: 'e1', [field]: value, spec: { typeUrl: 'x', value: Buffer.from('{"args":["true"]}') } }, new RegExp(`^${field} .*${re.source}`));
      }
    }
    expect(fs.readFileSync(decoy, 'utf8')).toBe('precious\n');
    expect(tree(tmp, (p) => p.startsWith(diagDir))).toEqual(before);
  });

  test('exec specs that are not an OCI process, signals and sizes out of range, relative checkpoint paths, undecodable bodies', async () => {
    const spec = (text: string) => ({ typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(text) });
    for (const [text, re] of [
      ['{"args":["sh"', /^exec process spec \(\d+ bytes\) is not JSON$/],
      ['root:x:0:0', /is not JSON$/],
      ['["sh"]', /is not a JSON object$/],
      ['{"cwd":"/"}', /has no args/],
      ['{"args":[]}', /has no args/],
      ['{"args":[1,2]}', /has no args/],
    ] as [string, RegExp][]) {
      await expectInvalid('Exec', shim.ExecProcessRequest, { id: 'c1', execId: 'e1', spec: spec(text) }, re);
    }
    for (const signal of [0, 65, 4294967295]) {
      await expectInvalid('Kill', shim.KillRequest, { id: 'c1', signal }, new RegExp(`^signal ${signal} is not a signal`));
    }
    await expectInvalid('ResizePty', shim.ResizePtyRequest, { id: 'c1', width: 70000, height: 20 }, /^terminal size 70000x20 is larger than 65535x65535$/);
    await expectInvalid('ResizePty', shim.ResizePtyRequest, { id: 'c1', width: 80, height: 4294967295 }, /larger than/);
    await expectInvalid('Checkpoint', shim.CheckpointTaskRequest, { id: 'c1', path: 'relative/dir' }, /^checkpoint path "relative\/dir" must be an absolute/);
    await expectInvalid('Create', shim.CreateTaskRequest, { id: 'ck1', bundle: validBundle('ck1'), checkpoint: 'ckpt' }, /^checkpoint "ckpt" must be an absolute/);
    // Not a protobuf message: a length running past the end, a varint that never ends, a
    // field of wire type 7. (A field number 0 ends the message for ts-proto: an empty request,
    // refused for its empty id.)
    for (const body of [Buffer.from([0x0a, 0x7f, 0x61]), Buffer.from([0x10, 0xff, 0xff, 0xff]), Buffer.from([0x0f, 0x01])]) {
      for (const [method] of ID_METHODS) {
        const err = await client.call(V2, method, body, meta).then(() => undefined, (e: FerryError) => e);
        expect({ method, code: err?.code, message: err?.message }).toEqual({ method, code: Code.InvalidArgument, message: expect.stringMatching(new RegExp(`^${method}: cannot decode the request`)) });
      }
    }
    const zero = await client.call(V2, 'State', Buffer.from([0x00, 0x01]), meta).then(() => undefined, (e: FerryError) => e);
    expect([zero?.code, zero?.message]).toEqual([Code.InvalidArgument, 'container id must not be empty']);
    // A group Join with a hostile id is refused as well.
    const join = await client.call('ferry.group.v1.Group', 'Join', Buffer.from('../x'), meta).then(() => undefined, (e: FerryError) => e);
    expect(join?.code).toBe(Code.InvalidArgument);
  });

  test('over gRPC too: the same checks, the same status code', async () => {
    const g = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure());
    try {
      const md = new grpc.Metadata();
      md.set('containerd-namespace', NS);
      const err = await new Promise<grpc.ServiceError>((resolve) => g.makeUnaryRequest(`/containerd.task.v3.Task/State`, (b: Buffer) => b, (b: Buffer) => b,
        Buffer.from(shim.StateRequest.encode({ id: '../x', execId: '' }).finish()), md, (e) => resolve(e!)));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^container id "\.\.\/x" must be letters/);
    } finally {
      g.close();
    }
  });

  test('the daemon answers on; nothing mounted, its heap snapshot is written on SIGUSR2', async () => {
    const res = shim.ConnectResponse.decode(await client.call(V2, 'Connect', shim.ConnectRequest.encode({ id: firstId }).finish(), meta));
    expect(res.shimPid).toBe(daemonPid);
    expect(mountsUnder(tmp)).toEqual([]);
    const report = await daemonReport(diagDir, daemonPid);
    expect(report.holds.tasks).toBe(0); // (the gRPC test's connection may still be closing)
    const snapshot = path.join(diagDir, `ferry-${daemonPid}-${report.seq}.heapsnapshot`);
    const head = fs.readFileSync(snapshot, 'utf8').slice(0, 40);
    expect(head).toMatch(/^\{"snapshot":\{"meta":/);
    expect(fs.statSync(diagDir).mode & 0o777).toBe(0o700);
  });
});
