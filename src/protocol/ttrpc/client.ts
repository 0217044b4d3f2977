// ttrpc client: unary calls multiplexed over one unix socket connection. The shim uses it to
// publish events to containerd (containerd.services.events.ttrpc.v1.Events/Forward); tests use
// it to drive the server. Stream ids are odd and increase from 1, as Go's client does.

import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { Code, FerryError, InternalError, UnavailableError } from '../../errors';
import { encodeFrame, FrameDecoder, MAX_MESSAGE_LENGTH, MessageType, oversizedMessage } from './frame';
import { decodeResponse, encodeRequest, type TtrpcResponse } from './messages';

export interface CallOptions {
  metadata?: Record<string, string>;
  /** Fails the call with DeadlineExceeded after this long, and tells the server (timeout_nano). */
  timeoutMs?: number;
}

interface Pending {
  resolve(payload: Buffer): void;
  reject(err: Error): void;
  timer?: NodeJS.Timeout;
}

export class TtrpcClient extends EventEmitter {
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private nextStreamId = 1;
  private closedReason?: string;

  /** Connects to a unix socket; accepts a bare path or a `unix://` address. */
  static connect(socketPath: string, timeoutMs = 10_000): Promise<TtrpcClient> {
    const path = socketPath.replace(/^unix:\/\//, '');
    return new Promise((resolve, reject) => {
      const sock = net.connect(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new FerryError(Code.DeadlineExceeded, `ttrpc: connect ${path}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(new UnavailableError(`ttrpc: connect ${path}: ${err.message}`));
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new TtrpcClient(sock));
      });
    });
  }

  /** Wraps an already connected socket. */
  constructor(private readonly sock: net.Socket) {
    super();
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => {
      this.closedReason = err.message;
    });
    sock.on('close', () => this.onClose());
  }

  get closed(): boolean {
    return this.closedReason !== undefined || this.sock.destroyed;
  }

  /** One unary call; resolves with the response payload or rejects with FerryError(status code). */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Buffer> {
    if (this.closed) return Promise.reject(new UnavailableError(`ttrpc: closed${this.reasonSuffix()}`));
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    const body = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: opts.timeoutMs !== undefined ? BigInt(Math.max(1, Math.round(opts.timeoutMs * 1e6))) : 0n,
      metadata: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    if (body.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(new FerryError(Code.ResourceExhausted, oversizedMessage(body.length)));
    }
    return new Promise<Buffer>((resolve, reject) => {
      const call: Pending = { resolve, reject };
      if (opts.timeoutMs !== undefined) {
        call.timer = setTimeout(() => {
          this.pending.delete(streamId);
          reject(new FerryError(Code.DeadlineExceeded, `ttrpc: ${service}/${method}: deadline exceeded after ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
      this.pending.set(streamId, call);
      this.sock.write(encodeFrame(streamId, MessageType.Request, 0, body));
    });
  }

  /** Closes the connection; calls still waiting are rejected with Unavailable. */
  close(): void {
    this.closedReason ??= 'closed by client';
    this.sock.destroy();
  }

  /** Lets the process exit while this connection is open and idle. */
  unref(): this {
    this.sock.unref();
    return this;
  }

  private onData(chunk: Buffer): void {
    for (const item of this.decoder.push(chunk)) {
      if (item.kind === 'oversized') {
        this.settle(item.streamId, (c) => c.reject(new FerryError(Code.ResourceExhausted, oversizedMessage(item.length))));
        continue;
      }
      if (item.kind !== 'frame' || item.type !== MessageType.Response) continue; // no streaming calls are made
      let resp: TtrpcResponse;
      try {
        resp = decodeResponse(item.payload);
      } catch (err) {
        this.settle(item.streamId, (c) => c.reject(new InternalError(`ttrpc: bad response: ${(err as Error).message}`)));
        continue;
      }
      const status = resp.status;
      this.settle(item.streamId, (c) =>
        status && status.code !== Code.OK
          ? c.reject(new FerryError(status.code, status.message))
          : c.resolve(Buffer.from(resp.payload.buffer, resp.payload.byteOffset, resp.payload.length)),
      );
    }
  }

  /** Completes the call waiting on streamId, if any (it may have timed out already). */
  private settle(streamId: number, complete: (call: Pending) => void): void {
    const call = this.pending.get(streamId);
    if (!call) return;
    this.pending.delete(streamId);
    clearTimeout(call.timer);
    complete(call);
  }

  private onClose(): void {
    this.closedReason ??= 'connection closed';
    const err = new UnavailableError(`ttrpc: closed${this.reasonSuffix()}`);
    for (const [id] of this.pending) this.settle(id, (c) => c.reject(err));
    this.emit('close');
  }

  private reasonSuffix(): string {
    return this.closedReason ? `: ${this.closedReason}` : '';
  }
}
