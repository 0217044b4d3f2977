// The protocol-neutral shape of a service: methods take and return encoded protobuf bytes.
// ttrpc and gRPC servers both dispatch into the same RawService table, so the task service is
// written once and served under several names (containerd.task.v2.Task, containerd.task.v3.Task)
// over both transports.

export interface RpcContext {
  /** Request metadata; keys lower-case, values in arrival order. */
  metadata: Map<string, string[]>;
  /** containerd namespace from `containerd-namespace-ttrpc` (ttrpc) or `containerd-namespace` (gRPC). */
  namespace?: string;
  /** Deadline from the caller, if it sent one (ms since epoch). */
  deadline?: number;
}

/** Handles one unary call. Throw a FerryError (src/errors.ts) to answer with a status. */
export type RawHandler = (payload: Buffer, ctx: RpcContext) => Promise<Buffer>;

export interface RawService {
  /** Fully-qualified service name, e.g. `containerd.task.v2.Task`. */
  name: string;
  methods: Record<string, RawHandler>;
}
