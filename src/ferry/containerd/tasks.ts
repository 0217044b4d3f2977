// containerd.services.tasks.v1.Tasks: the running side of a container (through its shim,
// whichever runtime it has: ferry's or containerd-shim-runc-v2).
import { Status } from '../../../api/gen/containerd/types/task/task';
import { CheckpointOptions, Options as RuncOptions } from '../../../api/gen/containerd/runc/v1/options';
import { TasksDefinition } from '../../../api/gen/containerd/services/tasks/v1/tasks';
import type { Any } from '../../../api/gen/google/protobuf/any';
import type { CallOptions, Connection, Partial2, RequestOf, ResponseOf } from './connection';

export { Status as TaskStatus };

type Req<M extends keyof typeof TasksDefinition.methods & string> = Partial2<RequestOf<typeof TasksDefinition, M>>;
type Res<M extends keyof typeof TasksDefinition.methods & string> = ResponseOf<typeof TasksDefinition, M>;

/** Any Tasks method, typed from the generated definition. */
export function callTasks<M extends keyof typeof TasksDefinition.methods & string>(conn: Connection, method: M, request: Req<M>, opts?: CallOptions): Promise<Res<M>> {
  return conn.unary(TasksDefinition, method, request, opts);
}

/** The task's process (pid, status), or undefined when the container has no task. */
export async function findTask(conn: Connection, containerId: string): Promise<Res<'get'>['process'] | undefined> {
  try {
    return (await callTasks(conn, 'get', { containerId })).process;
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw err;
  }
}

/** runc's CheckpointOptions as an Any: both containerd-shim-runc-v2 and ferry's shim decode it. */
export function checkpointOptionsAny(o: Partial<CheckpointOptions>): Any {
  return { typeUrl: 'containerd.runc.v1.CheckpointOptions', value: CheckpointOptions.encode(CheckpointOptions.fromPartial(o)).finish() };
}

/** runc's Options as an Any (task create options: criu_path, criu_image_path, criu_work_path...). */
export function runcOptionsAny(o: Partial<RuncOptions>): Any {
  return { typeUrl: 'containerd.runc.v1.Options', value: RuncOptions.encode(RuncOptions.fromPartial(o)).finish() };
}
