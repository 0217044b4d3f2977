// ttrpc server: serves unary calls from RawService tables on accepted connections.
// Behaviour follows Go ttrpc's serverConn.run (server.go, services.go): every request runs
// concurrently and is answered on its own stream id as soon as it completes; protocol
// violations are answered with a status on the offending stream id and the connection carries
// on; only transport errors end a connection. Streaming methods are not offered (containerd's
// task service is unary), so Data frames are refused like Data for an unknown stream.

import type * as net from 'node:net';
import { Code, InternalError, toStatus, UnimplementedError, type Status } from '../../errors';
import type { RawService, RpcContext } from '../rpc';
import { encodeFrame, FrameDecoder, MAX_MESSAGE_LENGTH, MessageType, oversizedMessage, type Frame } from './frame';
import { decodeRequest, encodeResponse, type TtrpcRequest } from './messages';

export type LogFn = (level: 'debug' | 'warn' | 'error', msg: string) => void;

/**
 * Go ttrpc answers a protocol violation on its stream and carries on, and so does this server —
 * but a peer that sends nothing else is not a ttrpc client: after this many violations in a row
 * (no request decoded in between) its connection is closed.
 */
export const MAX_VIOLATIONS_IN_A_ROW = 64;
/**
 * An oversized frame's data is skipped (as Go ttrpc does), but a length far beyond the limit is
 * no client's message: the connection is closed instead of reading gigabytes to skip it.
 */
export const MAX_SKIPPABLE_LENGTH = 4 * MAX_MESSAGE_LENGTH;

/** ttrpc metadata key carrying the containerd namespace. */
export const NAMESPACE_KEY = 'containerd-namespace-ttrpc';

export class TtrpcServer {
  private readonly services = new Map<string, RawService>();
  private readonly connections = new Set<net.Socket>();
  private readonly log: LogFn;

  constructor(services: RawService[], opts: { log?: LogFn } = {}) {
    for (const s of services) {
      if (this.services.has(s.name)) throw new Error(`duplicate service ${s.name} registered`);
      this.services.set(s.name, s);
    }
    this.log = opts.log ?? (() => {});
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Serves one accepted connection until it closes. The socket may be paused; it is resumed. */
  handleConnection(sock: net.Socket): void {
    this.connections.add(sock);
    const decoder = new FrameDecoder();
    let lastStreamId = 0;

    const reply = (streamId: number, status: Status | undefined, payload: Uint8Array = new Uint8Array(0)) => {
      if (sock.destroyed) return; // the client went away while the handler ran
      let body = encodeResponse({ status: status && { ...status, details: [] }, payload });
      if (body.length > MAX_MESSAGE_LENGTH) {
        // Go ttrpc would fail the send and drop the connection; answering with a status
        // instead keeps the other calls on this connection alive.
        this.log('warn', `ttrpc: response on stream ${streamId} too large (${body.length} bytes)`);
        body = encodeResponse({ status: { code: Code.ResourceExhausted, message: oversizedMessage(body.length), details: [] }, payload: new Uint8Array(0) });
      }
      sock.write(encodeFrame(streamId, MessageType.Response, 0, body));
    };
    let violations = 0;
    const refuse = (streamId: number, code: Code, message: string) => {
      this.log('debug', `ttrpc: stream ${streamId}: ${message}`);
      reply(streamId, { code, message });
      if (++violations >= MAX_VIOLATIONS_IN_A_ROW) {
        this.log('warn', `ttrpc: closing a connection after ${violations} protocol violations in a row`);
        sock.destroy();
      }
    };

    const onFrame = (frame: Frame) => {
      if (frame.streamId % 2 !== 1) {
        return refuse(frame.streamId, Code.InvalidArgument, 'StreamID must be odd for client initiated streams');
      }
      if (frame.type === MessageType.Data) {
        return refuse(frame.streamId, Code.InvalidArgument, 'StreamID is no longer active');
      }
      if (frame.type !== MessageType.Request) {
        // Go ignores unknown message types, for forward compatibility.
        return this.log('debug', `ttrpc: ignoring message type ${frame.type} on stream ${frame.streamId}`);
      }
      if (frame.streamId <= lastStreamId) {
        return refuse(frame.streamId, Code.InvalidArgument, 'StreamID cannot be re-used and must increment');
      }
      lastStreamId = frame.streamId;
      let req: TtrpcRequest;
      try {
        req = decodeRequest(frame.payload);
      } catch (err) {
        return refuse(frame.streamId, Code.InvalidArgument, `unmarshal request error: ${(err as Error).message}`);
      }
      violations = 0;
      this.dispatch(req)
        .then(
          (payload) => reply(frame.streamId, undefined, payload),
          (err) => reply(frame.streamId, toStatus(err)),
        )
        .catch((err) => this.log('error', `ttrpc: answering stream ${frame.streamId}: ${(err as Error).message}`));
    };

    sock.on('data', (chunk: Buffer) => {
      for (const item of decoder.push(chunk)) {
        if (sock.destroyed) return;
        if (item.kind === 'announced') {
          if (item.length > MAX_SKIPPABLE_LENGTH) {
            this.log('warn', `ttrpc: closing a connection that announced a ${item.length}-byte message`);
            sock.destroy();
            return;
          }
          continue;
        }
        if (item.kind === 'oversized') {
          refuse(item.streamId, Code.ResourceExhausted, oversizedMessage(item.length));
        } else {
          onFrame(item);
        }
      }
    });
    // A peer resetting or misbehaving must only end its own connection.
    sock.on('error', (err) => this.log('debug', `ttrpc: connection error: ${err.message}`));
    sock.on('close', () => {
      this.connections.delete(sock);
      if (decoder.pendingBytes > 0) this.log('debug', `ttrpc: connection closed inside a frame (${decoder.pendingBytes} bytes)`);
    });
    sock.resume();
  }

  /** Destroys every connection; calls still running are answered nowhere. */
  close(): void {
    for (const sock of this.connections) sock.destroy();
    this.connections.clear();
  }

  private async dispatch(req: TtrpcRequest): Promise<Uint8Array> {
    // Same words as Go ttrpc: status.Errorf(codes.Unimplemented, "service %v" / "method %v").
    const service = this.services.get(req.service);
    if (!service) throw new UnimplementedError(`service ${req.service}`);
    const handler = Object.hasOwn(service.methods, req.method) ? service.methods[req.method] : undefined;
    if (!handler) throw new UnimplementedError(`method ${req.method}`);
    const out = await handler(Buffer.from(req.payload.buffer, req.payload.byteOffset, req.payload.length), requestContext(req));
    if (!(out instanceof Uint8Array)) throw new InternalError(`${req.service}/${req.method} returned no bytes`);
    return out;
  }
}

function requestContext(req: TtrpcRequest): RpcContext {
  const metadata = new Map<string, string[]>();
  for (const { key, value } of req.metadata) {
    const k = key.toLowerCase();
    const values = metadata.get(k);
    if (values) values.push(value);
    else metadata.set(k, [value]);
  }
  const ctx: RpcContext = { metadata };
  const ns = metadata.get(NAMESPACE_KEY)?.[0];
  if (ns) ctx.namespace = ns;
  if (req.timeoutNano > 0n) ctx.deadline = Date.now() + Number(req.timeoutNano / 1_000_000n);
  return ctx;
}
