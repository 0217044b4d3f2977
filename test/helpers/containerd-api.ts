// A minimal gRPC client of containerd's Tasks service (containerd.services.tasks.v1.Tasks), for
// what ctr cannot send to a runtime not named io.containerd.runc.*: CheckpointOptions (exit),
// task Create options (criu_path, criu_image_path) and crafted checkpoint descriptors.
import * as grpc from '@grpc/grpc-js';
import {
  CheckpointTaskRequest, CheckpointTaskResponse, CreateTaskRequest, CreateTaskResponse, StartRequest, StartResponse,
} from '../../api/gen/containerd/services/tasks/v1/tasks';
import { CheckpointOptions, Options } from '../../api/gen/containerd/runc/v1/options';
import type { Any } from '../../api/gen/google/protobuf/any';

interface Codec<T> {
  encode(m: T): { finish(): Uint8Array };
  decode(b: Uint8Array): T;
  fromPartial(o: unknown): T;
}

export class TasksClient {
  private readonly client: grpc.Client;

  constructor(socketPath: string, private readonly namespace: string) {
    this.client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
  }

  private call<Req, Res>(method: string, reqCodec: Codec<Req>, resCodec: Codec<Res>, req: Partial<Req>, timeoutMs = 120000): Promise<Res> {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.namespace);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/containerd.services.tasks.v1.Tasks/${method}`,
        (m: Req) => Buffer.from(reqCodec.encode(m).finish()),
        (b: Buffer) => resCodec.decode(b),
        reqCodec.fromPartial(req),
        md,
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  create(req: Partial<CreateTaskRequest>): Promise<CreateTaskResponse> {
    return this.call('Create', CreateTaskRequest as Codec<CreateTaskRequest>, CreateTaskResponse as Codec<CreateTaskResponse>, req);
  }

  start(containerId: string): Promise<StartResponse> {
    return this.call('Start', StartRequest as Codec<StartRequest>, StartResponse as Codec<StartResponse>, { containerId });
  }

  checkpoint(req: Partial<CheckpointTaskRequest>): Promise<CheckpointTaskResponse> {
    return this.call('Checkpoint', CheckpointTaskRequest as Codec<CheckpointTaskRequest>, CheckpointTaskResponse as Codec<CheckpointTaskResponse>, req);
  }

  close(): void { this.client.close(); }
}

/** runc's CheckpointOptions as an Any (the type the Go shim and ferry both decode). */
export function runcCheckpointOptions(o: Partial<CheckpointOptions>): Any {
  return { typeUrl: 'containerd.runc.v1.CheckpointOptions', value: CheckpointOptions.encode(CheckpointOptions.fromPartial(o)).finish() };
}

/** runc's Options as an Any (criu_path, criu_image_path, ...). */
export function runcOptions(o: Partial<Options>): Any {
  return { typeUrl: 'containerd.runc.v1.Options', value: Options.encode(Options.fromPartial(o)).finish() };
}
