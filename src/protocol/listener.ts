// The shim's one socket, speaking both ttrpc and gRPC. containerd 1.7 talks ttrpc to a shim
// that announced "ttrpc" and gRPC to one that announced "grpc"; serving both on one socket
// means the choice is only in the announced address. Each connection's first byte decides:
// 'P' starts the HTTP/2 client preface ("PRI * HTTP/2.0..."), while a ttrpc frame always starts
// with 0x00 (a frame is at most 4 MiB, so the length's top byte is zero).
//
// Socket file ownership: after listenPath() the path is ours and Node unlinks it on close();
// after listenFd() (a socket inherited from the `start` process) close() leaves the path alone —
// whoever created it removes it (the shim's shutdown/delete).

import * as fs from 'node:fs';
import * as net from 'node:net';
import { createGrpcConnectionHandler, type GrpcConnectionHandler } from './grpc/server';
import type { RawService } from './rpc';
import { TtrpcServer, type LogFn } from './ttrpc/server';

const HTTP2_PREFACE_FIRST_BYTE = 0x50; // 'P'
/** A ttrpc frame's first byte: the top byte of a length that is at most 4 MiB. */
const TTRPC_FIRST_BYTE = 0x00;

export class ShimListener {
  private readonly server = new net.Server({ pauseOnConnect: true });
  private readonly ttrpc: TtrpcServer;
  private readonly grpc: GrpcConnectionHandler;
  private readonly sockets = new Set<net.Socket>();
  private readonly log: LogFn;
  /** Called when the last open connection closes (e.g. containerd disconnected). */
  onIdle?: () => void;

  constructor(services: RawService[], opts: { log?: LogFn } = {}) {
    this.log = opts.log ?? (() => {});
    this.ttrpc = new TtrpcServer(services, { log: this.log });
    this.grpc = createGrpcConnectionHandler(services);
    this.server.on('connection', (sock: net.Socket) => this.route(sock));
    this.server.on('error', (err) => this.log('error', `listener: ${err.message}`));
  }

  /** Open connections, of either protocol (including ones not yet routed). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Binds a new unix socket at socketPath (mode 0600) and starts accepting. */
  async listenPath(socketPath: string): Promise<void> {
    await this.listen({ path: socketPath });
    // Only root may talk to a shim: its API runs containers.
    fs.chmodSync(socketPath, 0o600);
  }

  /** Accepts on an inherited, already bound and listening socket. */
  listenFd(fd: number): Promise<void> {
    return this.listen({ fd });
  }

  /** Stops accepting and drops every connection, in both protocols. */
  close(): Promise<void> {
    for (const sock of this.sockets) sock.destroy();
    this.ttrpc.close();
    this.grpc.close();
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  private listen(options: net.ListenOptions | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(options, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  private route(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.once('close', () => {
      this.sockets.delete(sock);
      if (this.sockets.size === 0) this.onIdle?.();
    });
    // Until a protocol owns the socket, its errors are ours to swallow.
    const onEarlyError = (err: Error) => this.log('debug', `listener: connection error before first byte: ${err.message}`);
    sock.on('error', onEarlyError);
    sock.once('data', (first: Buffer) => {
      // Put the byte(s) back: the chosen protocol must see the stream from its start.
      sock.pause();
      sock.unshift(first);
      sock.off('error', onEarlyError);
      if (first[0] === HTTP2_PREFACE_FIRST_BYTE) {
        // grpc-js attaches its own error handling to the session; keep a guard on the raw socket
        // so an early reset cannot become an uncaught 'error'.
        sock.on('error', (err) => this.log('debug', `grpc: connection error: ${err.message}`));
        try {
          this.grpc(sock);
        } catch (err) {
          this.log('error', `grpc: cannot serve connection: ${(err as Error).message}`);
          sock.destroy();
        }
      } else if (first[0] === TTRPC_FIRST_BYTE) {
        this.ttrpc.handleConnection(sock);
      } else {
        // Neither protocol can start so: whatever this peer speaks, it is not to us.
        this.log('debug', `listener: connection starting with byte 0x${first[0]!.toString(16)} closed`);
        sock.destroy();
      }
    });
    sock.resume();
  }
}
