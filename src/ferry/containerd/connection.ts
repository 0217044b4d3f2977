// One gRPC connection to containerd, shared by the service clients of this folder (one file per
// containerd service). Calls are typed from the ts-proto service definitions in api/gen, carry the
// namespace in the `containerd-namespace` metadata, and fail with grpc-js errors whose `.details`
// is containerd's own message (src/ferry/cli-error.ts turns them into one line).
import * as grpc from '@grpc/grpc-js';

/** The codec half of a ts-proto message type. */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  fromPartial(object: unknown): T;
}

/** One method of a ts-proto generic service definition. */
export interface MethodDefinition<Req, Res> {
  name: string;
  requestType: Codec<Req>;
  responseType: Codec<Res>;
  requestStream: boolean;
  responseStream: boolean;
}

export interface ServiceDefinition {
  fullName: string;
  methods: Record<string, unknown>;
}

type Methods<S extends ServiceDefinition> = S['methods'];
export type RequestOf<S extends ServiceDefinition, M extends keyof Methods<S>> =
  Methods<S>[M] extends { requestType: { decode(b: Uint8Array): infer R } } ? R : never;
export type ResponseOf<S extends ServiceDefinition, M extends keyof Methods<S>> =
  Methods<S>[M] extends { responseType: { decode(b: Uint8Array): infer R } } ? R : never;

/** Deeply partial request objects, as ts-proto's fromPartial accepts them. */
export type Partial2<T> = T extends Uint8Array ? T : T extends (infer U)[] ? Partial2<U>[] : T extends object ? { [K in keyof T]?: Partial2<T[K]> } : T;

export interface CallOptions {
  /** Deadline in ms from now; default: none for streams, 5 minutes for unary calls. */
  timeoutMs?: number;
}

const DEFAULT_UNARY_TIMEOUT_MS = 5 * 60 * 1000;
// Checkpoint images and blobs are large; containerd itself sends up to 16 MiB messages.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class Connection {
  private readonly client: grpc.Client;

  /**
   * @param address containerd's socket path (without `unix://`).
   * @param lease   a lease id sent with every call (`containerd-lease`): what the calls create
   *                (content, snapshots, images' blobs) is kept from garbage collection while
   *                the lease lives.
   */
  constructor(readonly address: string, readonly namespace: string, readonly lease?: string, shared?: grpc.Client) {
    this.client = shared ?? new grpc.Client(`unix://${address}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
  }

  /** The same channel, in another namespace. */
  withNamespace(namespace: string): Connection {
    return new Connection(this.address, namespace, this.lease, this.client);
  }

  /** The same channel, with every call made under `lease` (see leases.ts). */
  withLease(lease: string | undefined): Connection {
    return new Connection(this.address, this.namespace, lease, this.client);
  }

  /** Closes the channel (for every Connection sharing it). */
  close(): void {
    this.client.close();
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.namespace);
    if (this.lease) md.set('containerd-lease', this.lease);
    return md;
  }

  private method<S extends ServiceDefinition, M extends keyof Methods<S> & string>(service: S, method: M) {
    const def = service.methods[method] as MethodDefinition<RequestOf<S, M>, ResponseOf<S, M>>;
    return {
      path: `/${service.fullName}/${def.name}`,
      serialize: (m: RequestOf<S, M>) => Buffer.from(def.requestType.encode(m).finish()),
      deserialize: (b: Buffer) => def.responseType.decode(b),
      fromPartial: (o: unknown) => def.requestType.fromPartial(o),
    };
  }

  /** A unary call. */
  unary<S extends ServiceDefinition, M extends keyof Methods<S> & string>(
    service: S, method: M, request: Partial2<RequestOf<S, M>>, opts: CallOptions = {},
  ): Promise<ResponseOf<S, M>> {
    const m = this.method(service, method);
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_UNARY_TIMEOUT_MS);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.serialize, m.deserialize, m.fromPartial(request), this.metadata(), { deadline },
        (err, res) => (err ? reject(err) : resolve(res!)));
    });
  }

  /** A server-streaming call, as an async iterable of responses. */
  serverStream<S extends ServiceDefinition, M extends keyof Methods<S> & string>(
    service: S, method: M, request: Partial2<RequestOf<S, M>>, opts: CallOptions = {},
  ): AsyncIterable<ResponseOf<S, M>> & { cancel(): void } {
    const m = this.method(service, method);
    const callOpts: grpc.CallOptions = opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    const call = this.client.makeServerStreamRequest(m.path, m.serialize, m.deserialize, m.fromPartial(request), this.metadata(), callOpts);
    return Object.assign(call as AsyncIterable<ResponseOf<S, M>>, { cancel: () => call.cancel() });
  }

  /** A bidirectional-streaming call: write requests, iterate responses. */
  bidiStream<S extends ServiceDefinition, M extends keyof Methods<S> & string>(
    service: S, method: M, opts: CallOptions = {},
  ): BidiCall<RequestOf<S, M>, ResponseOf<S, M>> {
    const m = this.method(service, method);
    const callOpts: grpc.CallOptions = opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    const call = this.client.makeBidiStreamRequest(m.path, m.serialize, m.deserialize, this.metadata(), callOpts);
    return new BidiCall(call, m.fromPartial);
  }
}

/** A bidirectional stream with promise-based writes (honouring back-pressure) and reads. */
export class BidiCall<Req, Res> {
  private readonly queue: Res[] = [];
  private waiting: { resolve: (r: Res | undefined) => void; reject: (e: unknown) => void } | undefined;
  private ended = false;
  private error: unknown;

  constructor(private readonly call: grpc.ClientDuplexStream<Req, Res>, private readonly fromPartial: (o: unknown) => Req) {
    call.on('data', (r: Res) => {
      if (this.waiting) { const w = this.waiting; this.waiting = undefined; w.resolve(r); } else this.queue.push(r);
    });
    call.on('end', () => { this.ended = true; this.waiting?.resolve(undefined); this.waiting = undefined; });
    call.on('error', (e) => { this.error = e; this.waiting?.reject(e); this.waiting = undefined; });
  }

  /** Sends one request; resolves when the stream can take more. */
  write(request: Partial2<Req>): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    const ok = this.call.write(this.fromPartial(request));
    return ok ? Promise.resolve() : new Promise((resolve) => this.call.once('drain', () => resolve()));
  }

  /** The next response, or undefined when the server ended the stream. */
  read(): Promise<Res | undefined> {
    const next = this.queue.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
  }

  /** Ends our side of the stream. */
  end(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }
}
