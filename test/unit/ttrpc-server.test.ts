import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Code, FerryError, NotFoundError } from '../../src/errors';
import type { RawService } from '../../src/protocol/rpc';
import { TtrpcClient } from '../../src/protocol/ttrpc/client';
import { encodeFrame, FrameDecoder, MAX_MESSAGE_LENGTH, MessageType, type Frame } from '../../src/protocol/ttrpc/frame';
import { decodeResponse, encodeRequest } from '../../src/protocol/ttrpc/messages';
import { TtrpcServer } from '../../src/protocol/ttrpc/server';

const SVC = 'test.v1.Svc';

const service: RawService = {
  name: SVC,
  methods: {
    Echo: async (p) => p,
    // Answers after a random delay so that responses overtake each other.
    Jitter: async (p) => {
      await sleep(Math.random() * 30);
      return Buffer.concat([Buffer.from('re:'), p]);
    },
    Ctx: async (_p, ctx) => Buffer.from(JSON.stringify({ md: [...ctx.metadata], ns: ctx.namespace ?? null, deadline: ctx.deadline ?? null })),
    NotFound: async () => {
      throw new NotFoundError('container c1 not found');
    },
    Plain: async () => {
      throw new Error('boom');
    },
    Enoent: async () => {
      throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    },
    Sync: (() => {
      throw new FerryError(Code.FailedPrecondition, 'thrown synchronously');
    }) as unknown as RawService['methods'][string],
    Huge: async () => Buffer.alloc(MAX_MESSAGE_LENGTH + 1),
    Slow: async () => {
      await sleep(300);
      return Buffer.from('late');
    },
  },
};

let dir: string;
let sockPath: string;
let server: TtrpcServer;
let listener: net.Server;
const logs: string[] = [];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-'));
  sockPath = path.join(dir, 's.sock');
  server = new TtrpcServer([service], { log: (level, msg) => logs.push(`${level} ${msg}`) });
  listener = net.createServer({ pauseOnConnect: true }, (s) => server.handleConnection(s));
  await new Promise<void>((r) => listener.listen(sockPath, r));
});

afterEach(async () => {
  server.close();
  await new Promise((r) => listener.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function withClient<T>(fn: (c: TtrpcClient) => Promise<T>): Promise<T> {
  const c = await TtrpcClient.connect(sockPath);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** A raw connection: write arbitrary bytes, read decoded frames. */
async function raw() {
  const sock = net.connect(sockPath);
  await new Promise((r) => sock.once('connect', r));
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let wake: (() => void) | undefined;
  sock.on('data', (c: Buffer) => {
    for (const d of decoder.push(c)) if (d.kind === 'frame') frames.push(d);
    wake?.();
  });
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  return {
    sock,
    closed,
    async next(): Promise<Frame> {
      while (frames.length === 0) await new Promise<void>((r) => (wake = r));
      return frames.shift()!;
    },
  };
}

const request = (id: number, service: string, method: string, payload = Buffer.alloc(0)) =>
  encodeFrame(id, MessageType.Request, 0, encodeRequest({ service, method, payload, timeoutNano: 0n, metadata: [] }));

async function waitFor(cond: () => boolean) {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(10);
  expect(cond()).toBe(true);
}

describe('TtrpcServer + TtrpcClient over a unix socket', () => {
  test('round trip, including an empty payload', async () => {
    await withClient(async (c) => {
      expect((await c.call(SVC, 'Echo', Buffer.from('ping'))).toString()).toBe('ping');
      expect((await c.call(SVC, 'Echo', Buffer.alloc(0))).length).toBe(0);
    });
  });

  test('1000 concurrent calls on one connection, answered out of order, each correctly', async () => {
    await withClient(async (c) => {
      const order: number[] = [];
      const calls = Array.from({ length: 1000 }, (_, i) =>
        c.call(SVC, 'Jitter', Buffer.from(String(i))).then((out) => {
          order.push(i);
          return out.toString();
        }),
      );
      const results = await Promise.all(calls);
      results.forEach((r, i) => expect(r).toBe(`re:${i}`));
      expect(order).toHaveLength(1000);
      expect(order).not.toEqual([...order].sort((a, b) => a - b)); // answered as each finished
      expect(server.connectionCount).toBe(1);
    });
  });

  test('metadata (keys lower-cased), namespace and deadline', async () => {
    await withClient(async (c) => {
      const before = Date.now();
      const out = JSON.parse(
        (await c.call(SVC, 'Ctx', Buffer.alloc(0), { metadata: { 'containerd-namespace-ttrpc': 'k8s.io', 'X-Trace': 'abc' }, timeoutMs: 5000 })).toString(),
      );
      expect(out.ns).toBe('k8s.io');
      expect(out.md).toEqual([
        ['containerd-namespace-ttrpc', ['k8s.io']],
        ['x-trace', ['abc']],
      ]);
      expect(out.deadline).toBeGreaterThanOrEqual(before + 4900);
      expect(out.deadline).toBeLessThanOrEqual(Date.now() + 5000);

      const bare = JSON.parse((await c.call(SVC, 'Ctx', Buffer.alloc(0))).toString());
      expect(bare).toEqual({ md: [], ns: null, deadline: null });
    });
  });

  test('client deadline: DeadlineExceeded, late answer ignored, connection still usable', async () => {
    await withClient(async (c) => {
      const err = await c.call(SVC, 'Slow', Buffer.alloc(0), { timeoutMs: 50 }).catch((e) => e);
      expect(err).toBeInstanceOf(FerryError);
      expect(err.code).toBe(Code.DeadlineExceeded);
      await sleep(350); // the late response arrives and must be dropped quietly
      expect((await c.call(SVC, 'Echo', Buffer.from('still'))).toString()).toBe('still');
    });
  });

  test('handler errors become statuses with code and message', async () => {
    await withClient(async (c) => {
      const cases: [string, Code, string][] = [
        ['NotFound', Code.NotFound, 'container c1 not found'],
        ['Plain', Code.Unknown, 'boom'],
        ['Enoent', Code.NotFound, 'ENOENT: no such file'],
        ['Sync', Code.FailedPrecondition, 'thrown synchronously'],
      ];
      for (const [method, code, message] of cases) {
        const err = await c.call(SVC, method, Buffer.alloc(0)).catch((e) => e);
        expect(err).toBeInstanceOf(FerryError);
        expect({ code: err.code, message: err.message }).toEqual({ code, message });
      }
    });
  });

  test('unknown service or method: Unimplemented, worded as Go ttrpc', async () => {
    await withClient(async (c) => {
      const e1 = await c.call('no.such.Svc', 'Echo', Buffer.alloc(0)).catch((e) => e);
      expect([e1.code, e1.message]).toEqual([Code.Unimplemented, 'service no.such.Svc']);
      const e2 = await c.call(SVC, 'Nope', Buffer.alloc(0)).catch((e) => e);
      expect([e2.code, e2.message]).toEqual([Code.Unimplemented, 'method Nope']);
      const e3 = await c.call(SVC, 'toString', Buffer.alloc(0)).catch((e) => e); // not an own method
      expect(e3.code).toBe(Code.Unimplemented);
    });
  });

  test('a response over 4 MiB becomes ResourceExhausted and the connection survives', async () => {
    await withClient(async (c) => {
      const err = await c.call(SVC, 'Huge', Buffer.alloc(0)).catch((e) => e);
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.message).toMatch(/exceed maximum message size of 4194304/);
      expect((await c.call(SVC, 'Echo', Buffer.from('ok'))).toString()).toBe('ok');
    });
  });

  test('client refuses to send a request over 4 MiB', async () => {
    await withClient(async (c) => {
      const err = await c.call(SVC, 'Echo', Buffer.alloc(MAX_MESSAGE_LENGTH)).catch((e) => e);
      expect(err.code).toBe(Code.ResourceExhausted);
      expect((await c.call(SVC, 'Echo', Buffer.from('ok'))).toString()).toBe('ok');
    });
  });

  test('server close rejects pending calls with Unavailable and emits close', async () => {
    const c = await TtrpcClient.connect(sockPath);
    const closed = new Promise((r) => c.on('close', r));
    const pending = c.call(SVC, 'Slow', Buffer.alloc(0)).catch((e) => e);
    await waitFor(() => server.connectionCount === 1);
    await sleep(20);
    server.close();
    const err = await pending;
    expect(err.code).toBe(Code.Unavailable);
    await closed;
    expect((await c.call(SVC, 'Echo', Buffer.alloc(0)).catch((e) => e)).code).toBe(Code.Unavailable);
  });

  test('connect: unix:// addresses work; a missing socket is Unavailable', async () => {
    const c = await TtrpcClient.connect(`unix://${sockPath}`);
    expect((await c.call(SVC, 'Echo', Buffer.from('u'))).toString()).toBe('u');
    c.close();
    const err = await TtrpcClient.connect(path.join(dir, 'missing.sock')).catch((e) => e);
    expect(err.code).toBe(Code.Unavailable);
  });
});

describe('TtrpcServer against misbehaving peers', () => {
  test('truncated frame then close: connection dropped, server keeps serving', async () => {
    const r = await raw();
    await waitFor(() => server.connectionCount === 1);
    const frame = request(1, SVC, 'Echo', Buffer.from('x'.repeat(100)));
    r.sock.end(frame.subarray(0, 40));
    await r.closed;
    await waitFor(() => server.connectionCount === 0);
    expect(logs.some((l) => l.includes('closed inside a frame'))).toBe(true);
    await withClient(async (c) => expect((await c.call(SVC, 'Echo', Buffer.from('a'))).toString()).toBe('a'));
  });

  test('oversized length: data discarded, ResourceExhausted on that stream, same connection goes on', async () => {
    const r = await raw();
    const other = await TtrpcClient.connect(sockPath);
    const header = Buffer.alloc(10);
    header.writeUInt32BE(MAX_MESSAGE_LENGTH + 10, 0);
    header.writeUInt32BE(1, 4);
    header[8] = MessageType.Request;
    r.sock.write(header);
    // While the big message trickles in, another connection is served normally.
    expect((await other.call(SVC, 'Echo', Buffer.from('other'))).toString()).toBe('other');
    r.sock.write(Buffer.alloc(MAX_MESSAGE_LENGTH + 10, 0x41));
    r.sock.write(request(3, SVC, 'Echo', Buffer.from('after')));
    const f1 = await r.next();
    expect(f1.streamId).toBe(1);
    const st = decodeResponse(f1.payload).status!;
    expect(st.code).toBe(Code.ResourceExhausted);
    expect(st.message).toBe(`message length ${MAX_MESSAGE_LENGTH + 10} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`);
    const f2 = await r.next();
    expect(f2.streamId).toBe(3);
    expect(Buffer.from(decodeResponse(f2.payload).payload).toString()).toBe('after');
    r.sock.destroy();
    other.close();
  });

  test('repeated metadata keys (any case) collect their values in arrival order', async () => {
    const r = await raw();
    const metadata = [{ key: 'A', value: '1' }, { key: 'b', value: '2' }, { key: 'a', value: '3' }];
    r.sock.write(encodeFrame(1, MessageType.Request, 0, encodeRequest({ service: SVC, method: 'Ctx', payload: Buffer.alloc(0), timeoutNano: 0n, metadata })));
    const out = JSON.parse(Buffer.from(decodeResponse((await r.next()).payload).payload).toString());
    expect(out.md).toEqual([['a', ['1', '3']], ['b', ['2']]]);
    r.sock.destroy();
  });

  test('protocol violations are answered on their stream id with InvalidArgument', async () => {
    const r = await raw();
    r.sock.write(encodeFrame(5, MessageType.Request, 0, Buffer.from([0x0a, 0x7f, 0x01]))); // bad protobuf
    r.sock.write(request(4, SVC, 'Echo')); // even id
    r.sock.write(request(7, SVC, 'Echo', Buffer.from('seven')));
    r.sock.write(request(7, SVC, 'Echo')); // re-used id
    r.sock.write(encodeFrame(9, MessageType.Data, 1, Buffer.from('d'))); // no streams exist
    r.sock.write(encodeFrame(11, 0x7e as MessageType, 0, Buffer.alloc(0))); // unknown type: ignored
    r.sock.write(request(13, SVC, 'Echo', Buffer.from('thirteen')));
    const got = new Map<number, { code?: number; message?: string; payload: string }[]>();
    for (let i = 0; i < 6; i++) {
      const f = await r.next();
      const resp = decodeResponse(f.payload);
      got.set(f.streamId, [...(got.get(f.streamId) ?? []), { code: resp.status?.code, message: resp.status?.message, payload: Buffer.from(resp.payload).toString() }]);
    }
    expect(got.get(5)![0]).toMatchObject({ code: Code.InvalidArgument, message: expect.stringMatching(/^unmarshal request error/) });
    expect(got.get(4)![0]).toMatchObject({ code: Code.InvalidArgument, message: 'StreamID must be odd for client initiated streams' });
    expect(got.get(7)).toEqual(
      expect.arrayContaining([
        { code: undefined, message: undefined, payload: 'seven' },
        { code: Code.InvalidArgument, message: 'StreamID cannot be re-used and must increment', payload: '' },
      ]),
    );
    expect(got.get(9)![0]).toMatchObject({ code: Code.InvalidArgument, message: 'StreamID is no longer active' });
    expect(got.get(13)![0].payload).toBe('thirteen');
    expect(got.has(11)).toBe(false);
    r.sock.destroy();
  });

  test('garbage bytes never crash the server or disturb other connections', async () => {
    const good = await TtrpcClient.connect(sockPath);
    const bad: Awaited<ReturnType<typeof raw>>[] = [];
    for (const junk of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from(Array.from({ length: 20000 }, () => Math.floor(Math.random() * 256))), Buffer.alloc(10, 0xff)]) {
      const r = await raw();
      r.sock.write(junk);
      bad.push(r);
    }
    const inflight = Array.from({ length: 50 }, (_, i) => good.call(SVC, 'Jitter', Buffer.from(String(i))));
    for (const r of bad) r.sock.destroy();
    expect((await Promise.all(inflight)).map(String)).toEqual(Array.from({ length: 50 }, (_, i) => `re:${i}`));
    await waitFor(() => server.connectionCount === 1);
    good.close();
  });
});
