import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { Code, NotFoundError } from '../../src/errors';
import { ShimListener } from '../../src/protocol/listener';
import type { RawService } from '../../src/protocol/rpc';
import { TtrpcClient } from '../../src/protocol/ttrpc/client';

const SVC = 'containerd.task.v3.Task';

const service: RawService = {
  name: SVC,
  methods: {
    Echo: async (p) => {
      await sleep(Math.random() * 10);
      return Buffer.concat([Buffer.from('echo:'), p]);
    },
    Ctx: async (_p, ctx) => Buffer.from(JSON.stringify({ ns: ctx.namespace ?? null, deadline: ctx.deadline ?? null, other: ctx.metadata.get('x-other') ?? null })),
    Missing: async () => {
      throw new NotFoundError('process p1 not found');
    },
    Plain: async () => {
      throw new Error('boom');
    },
  },
};

const identity = (b: Buffer) => b;

function grpcCall(client: grpc.Client, method: string, payload: Buffer, md = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/${SVC}/${method}`, identity, identity, payload, md, options, (err, out) => (err ? reject(err) : resolve(out!))),
  );
}

let dir: string;
let sockPath: string;
let listener: ShimListener;
let grpcClient: grpc.Client | undefined;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shimlistener-'));
  sockPath = path.join(dir, 's.sock');
  listener = new ShimListener([service]);
  await listener.listenPath(sockPath);
});

afterEach(async () => {
  grpcClient?.close();
  grpcClient = undefined;
  await listener.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const newGrpcClient = () => (grpcClient = new grpc.Client(`unix:${sockPath}`, grpc.credentials.createInsecure()));

describe('ShimListener', () => {
  test('listenPath creates a 0600 socket, serves ttrpc, and close() removes the socket it created', async () => {
    expect(fs.statSync(sockPath).mode & 0o777).toBe(0o600);
    const c = await TtrpcClient.connect(sockPath);
    expect((await c.call(SVC, 'Echo', Buffer.from('t'))).toString()).toBe('echo:t');
    const closed = new Promise((r) => c.on('close', r));
    await listener.close();
    await closed; // connections are dropped too
    expect(fs.existsSync(sockPath)).toBe(false);
  });

  test('the same service over gRPC and ttrpc on one socket, 200 concurrent calls each', async () => {
    const client = newGrpcClient();
    const ttrpc = await TtrpcClient.connect(sockPath);
    const g = Array.from({ length: 200 }, (_, i) => grpcCall(client, 'Echo', Buffer.from(`g${i}`)).then(String));
    const t = Array.from({ length: 200 }, (_, i) => ttrpc.call(SVC, 'Echo', Buffer.from(`t${i}`)).then(String));
    expect(await Promise.all(g)).toEqual(Array.from({ length: 200 }, (_, i) => `echo:g${i}`));
    expect(await Promise.all(t)).toEqual(Array.from({ length: 200 }, (_, i) => `echo:t${i}`));
    expect(listener.connectionCount).toBe(2);
    ttrpc.close();
  });

  test('gRPC: containerd-namespace metadata becomes ctx.namespace; deadline is passed on', async () => {
    const client = newGrpcClient();
    const md = new grpc.Metadata();
    md.set('containerd-namespace', 'moby');
    md.set('x-other', 'v');
    const deadline = Date.now() + 10_000;
    const out = JSON.parse((await grpcCall(client, 'Ctx', Buffer.alloc(0), md, { deadline })).toString());
    expect(out.ns).toBe('moby');
    expect(out.other).toEqual(['v']);
    expect(Math.abs(out.deadline - deadline)).toBeLessThan(1000);
    // The ttrpc key means nothing over gRPC.
    const md2 = new grpc.Metadata();
    md2.set('containerd-namespace-ttrpc', 'wrong');
    expect(JSON.parse((await grpcCall(client, 'Ctx', Buffer.alloc(0), md2)).toString()).ns).toBeNull();
  });

  test('gRPC: FerryError code and message map to the gRPC status', async () => {
    const client = newGrpcClient();
    const e1 = await grpcCall(client, 'Missing', Buffer.alloc(0)).catch((e) => e);
    expect([e1.code, e1.details]).toEqual([grpc.status.NOT_FOUND, 'process p1 not found']);
    const e2 = await grpcCall(client, 'Plain', Buffer.alloc(0)).catch((e) => e);
    expect([e2.code, e2.details]).toEqual([grpc.status.UNKNOWN, 'boom']);
    const e3 = await grpcCall(client, 'NoSuchMethod', Buffer.alloc(0)).catch((e) => e);
    expect(e3.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  test('a connection that closes before its first byte, or sends garbage, harms nobody', async () => {
    const quiet = net.connect(sockPath);
    await new Promise((r) => quiet.once('connect', r));
    quiet.destroy();
    const junk = net.connect(sockPath);
    junk.on('error', () => {});
    junk.write('PRI garbage that is not HTTP/2 at all\r\n\r\n');
    const c = await TtrpcClient.connect(sockPath);
    expect((await c.call(SVC, 'Echo', Buffer.from('x'))).toString()).toBe('echo:x');
    expect((await grpcCall(newGrpcClient(), 'Echo', Buffer.from('y'))).toString()).toBe('echo:y');
    junk.destroy();
    c.close();
  });

  test('onIdle fires when the last connection goes', async () => {
    let idle = 0;
    listener.onIdle = () => idle++;
    const a = await TtrpcClient.connect(sockPath);
    const b = await TtrpcClient.connect(sockPath);
    await a.call(SVC, 'Echo', Buffer.alloc(0));
    await b.call(SVC, 'Echo', Buffer.alloc(0));
    a.close();
    await sleep(50);
    expect(idle).toBe(0);
    b.close();
    for (let i = 0; i < 100 && idle === 0; i++) await sleep(10);
    expect(idle).toBe(1);
  });
});

describe('ShimListener in a separate process (inherited fd, lazy gRPC)', () => {
  // A fresh Node process adopts a listening socket created by someone else (here: python, as
  // the shim's `start` creates it before spawning the daemon) and reports, over ttrpc, whether
  // grpc-js has been loaded yet.
  const childScript = (root: string) => `
    const fs = require('fs');
    const ts = require(${JSON.stringify(require.resolve('typescript'))});
    require.extensions['.ts'] = (m, f) => m._compile(ts.transpileModule(fs.readFileSync(f, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText, f);
    const { ShimListener } = require(${JSON.stringify(path.join(root, 'src/protocol/listener.ts'))});
    const grpcLoaded = () => Object.keys(require.cache).some((k) => k.includes('@grpc/grpc-js'));
    const l = new ShimListener([{ name: ${JSON.stringify(SVC)}, methods: {
      GrpcLoaded: async () => Buffer.from(String(grpcLoaded())),
      Echo: async (p) => p,
    } }]);
    l.listenFd(3).then(() => process.stdout.write('ready\\n'));
    process.stdin.on('data', () => {});
    process.stdin.on('end', () => l.close().then(() => { process.stdout.write('closed\\n'); process.exit(0); }));
  `;

  test('grpc-js is loaded only on the first gRPC connection; close() leaves an inherited socket file alone', async () => {
    const script = path.join(dir, 'child.js');
    fs.writeFileSync(script, childScript(path.resolve(__dirname, '../..')));
    const inherited = path.join(dir, 'inherited.sock');
    const py = [
      'import os, socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      `s.bind(${JSON.stringify(inherited)})`,
      's.listen(128)',
      'os.dup2(s.fileno(), 3)',
      'os.set_inheritable(3, True)', // s may itself be fd 3, and Python sockets are close-on-exec
      `os.execvp(${JSON.stringify(process.execPath)}, [${JSON.stringify(process.execPath)}, ${JSON.stringify(script)}])`,
    ].join('\n');
    const child = spawn('python3', ['-c', py], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      for (let i = 0; i < 1000 && !out.includes('ready'); i++) await sleep(10);
      expect({ out, err }).toEqual({ out: 'ready\n', err: '' });

      const ttrpc = await TtrpcClient.connect(inherited);
      expect((await ttrpc.call(SVC, 'GrpcLoaded', Buffer.alloc(0))).toString()).toBe('false');

      const g = new grpc.Client(`unix:${inherited}`, grpc.credentials.createInsecure());
      const echoed = await new Promise<Buffer>((resolve, reject) =>
        g.makeUnaryRequest(`/${SVC}/Echo`, identity, identity, Buffer.from('hi'), (e, o) => (e ? reject(e) : resolve(o!))),
      );
      expect(echoed.toString()).toBe('hi');
      expect((await ttrpc.call(SVC, 'GrpcLoaded', Buffer.alloc(0))).toString()).toBe('true');
      g.close();
      ttrpc.close();

      child.stdin.end();
      await exited;
      expect(out).toBe('ready\nclosed\n');
      expect(fs.existsSync(inherited)).toBe(true);
    } finally {
      child.kill();
    }
  }, 30_000);
});
