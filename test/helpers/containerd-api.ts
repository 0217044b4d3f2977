// A minimal gRPC client of containerd's Tasks service (containerd.services.tasks.v1.Tasks), for
// what ctr cannot send to a runtime not named io.containerd.runc.*: CheckpointOptions (exit),
// task Create options (criu_path, criu_image_path) and crafted checkpoint descriptors.
import * as grpc from '@grpc/grpc-js';
import {
  CheckpointTaskRequest, CheckpointTaskResponse, CreateTaskRequest, CreateTaskResponse, StartRequest, StartResponse,
  TasksDefinition,
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

// ---- Generic Tasks calls (any method of TasksDefinition), and Task.Update --------------------
// ctr has no `update` command: tests reach Tasks.Update (and anything else ctr cannot express)
// through callTasks, typed from the generated service definition.
type TasksMethods = typeof TasksDefinition.methods;
export type TasksMethod = keyof TasksMethods;
export type TasksRequest<M extends TasksMethod> = ReturnType<TasksMethods[M]['requestType']['decode']>;
export type TasksResponse<M extends TasksMethod> = ReturnType<TasksMethods[M]['responseType']['decode']>;

/** Where containerd listens and which namespace to act in (a test Containerd fits). */
export interface TasksTarget { address: string; namespace: string }

/**
 * One unary call of containerd.services.tasks.v1.Tasks, e.g.
 * `callTasks(c, 'update', { containerId, resources })`. Rejects with the grpc-js error
 * (`.code` is the gRPC status, `.details` containerd's message).
 */
export function callTasks<M extends TasksMethod>(target: TasksTarget, method: M, request: Partial<TasksRequest<M>>, timeoutMs = 60000): Promise<TasksResponse<M>> {
  const def = TasksDefinition.methods[method] as unknown as {
    name: string;
    requestType: Codec<TasksRequest<M>>;
    responseType: Codec<TasksResponse<M>>;
  };
  const client = new grpc.Client(`unix://${target.address}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('containerd-namespace', target.namespace);
  return new Promise<TasksResponse<M>>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${TasksDefinition.fullName}/${def.name}`,
      (m: TasksRequest<M>) => Buffer.from(def.requestType.encode(m).finish()),
      (b: Buffer) => def.responseType.decode(b),
      def.requestType.fromPartial(request),
      md,
      { deadline: Date.now() + timeoutMs },
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  }).finally(() => client.close());
}

/** The type URL containerd's client gives OCI LinuxResources in Tasks.Update. */
export const LINUX_RESOURCES_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

/** Tasks.Update with OCI LinuxResources (as JSON, the way containerd's client marshals them). */
export function updateTask(target: TasksTarget, containerId: string, resources: unknown): Promise<unknown> {
  const value = new TextEncoder().encode(typeof resources === 'string' ? resources : JSON.stringify(resources));
  return callTasks(target, 'update', { containerId, resources: { typeUrl: LINUX_RESOURCES_TYPE, value } });
}
