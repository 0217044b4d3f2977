// gRPC side of the shim socket: the same RawService tables, served by grpc-js on connections we
// accepted ourselves (Server.createConnectionInjector). grpc-js (with protobufjs, ~900 KiB of
// bundled source) is loaded on the first gRPC connection only, from its own bundle: a daemon
// that containerd talks ttrpc to never reads or compiles it.

import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import type * as grpcTypes from '@grpc/grpc-js';
import { toStatus } from '../../errors';
import type { RawHandler, RawService, RpcContext } from '../rpc';
import { loadBundle } from '../../loader/code-cache';

/** grpc-js's own bundle, beside the daemon's (contrib/bundle.js builds it from grpc-js-bundle.ts). */
export const GRPC_BUNDLE = 'grpc-js.js';

/** gRPC metadata key carrying the containerd namespace. */
export const GRPC_NAMESPACE_KEY = 'containerd-namespace';

export type GrpcConnectionHandler = ((sock: net.Socket) => void) & {
  /** Closes every gRPC session handed over so far; a no-op if none was. */
  close(): void;
};

export function createGrpcConnectionHandler(services: RawService[]): GrpcConnectionHandler {
  let injector: grpcTypes.ConnectionInjector | undefined;
  const handle = (sock: net.Socket) => {
    injector ??= createInjector(services);
    injector.injectConnection(sock);
  };
  return Object.assign(handle, {
    close() {
      injector?.destroy();
      injector = undefined;
    },
  });
}

function createInjector(services: RawService[]): grpcTypes.ConnectionInjector {
  const grpc = loadGrpcJs();
  const identity = (b: Buffer) => b;
  const server = new grpc.Server();
  for (const service of services) {
    const definition: Record<string, grpcTypes.MethodDefinition<Buffer, Buffer>> = {};
    const implementation: grpcTypes.UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(service.methods)) {
      definition[method] = {
        path: `/${service.name}/${method}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      };
      implementation[method] = unary(handler);
    }
    server.addService(definition, implementation);
  }
  return server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
}

/** From dist/grpc-js.js when running bundled; from node_modules when running from source (tests). */
function loadGrpcJs(): typeof grpcTypes {
  const bundled = path.join(__dirname, GRPC_BUNDLE);
  if (fs.existsSync(bundled)) return loadBundle(bundled) as typeof grpcTypes;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@grpc/grpc-js') as typeof grpcTypes;
}

function unary(handler: RawHandler): grpcTypes.handleUnaryCall<Buffer, Buffer> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request, callContext(call)))
      .then(
        (out) => callback(null, out),
        (err) => {
          const st = toStatus(err);
          callback({ code: st.code as number, details: st.message });
        },
      );
  };
}

function callContext(call: grpcTypes.ServerUnaryCall<Buffer, Buffer>): RpcContext {
  const metadata = new Map<string, string[]>();
  for (const [key, values] of Object.entries(call.metadata.toJSON())) {
    // Binary (-bin) values are passed on base64-encoded, keeping RpcContext string-only.
    metadata.set(key, values.map((v) => (typeof v === 'string' ? v : v.toString('base64'))));
  }
  const ctx: RpcContext = { metadata };
  const ns = metadata.get(GRPC_NAMESPACE_KEY)?.[0];
  if (ns) ctx.namespace = ns;
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(ms)) ctx.deadline = ms;
  return ctx;
}
