// Binds the TaskService to the wire: one RawService table (decode request → call → encode
// response), served under both `containerd.task.v2.Task` (containerd 1.7 over ttrpc, and 2.x
// for shims that bootstrap as version 2) and `containerd.task.v3.Task` (2.x; and 1.7's gRPC
// bridge). The two packages' messages are wire-identical, so one table serves both.
import * as shim from '../../api/gen/containerd/task/v2/shim';
import type { RawHandler, RawService } from '../protocol/rpc';
import type { Logger } from '../log';
import type { TaskService } from './task-service';
import { InvalidArgumentError } from '../errors';
import { requestChecks } from './request-checks';

interface Codec<T> { decode(b: Uint8Array): T; encode(m: T): { finish(): Uint8Array } }

const Empty: Codec<Record<string, never>> = {
  decode: () => ({}),
  encode: () => ({ finish: () => new Uint8Array(0) }),
};

export interface TaskMethodOptions {
  log?: Logger;
  /** Where bundles live (the parent of the daemon's first bundle); undefined: not checked. */
  bundleParent?: string;
  /** Told of every call before it runs: the daemon's memory settler counts activity, and its
   *  learned code cache records the methods (src/loader/learned-cache.ts). */
  onCall?: (method: string, request: unknown) => void;
}

export function taskMethods(s: TaskService, opts: TaskMethodOptions = {}): Record<string, RawHandler> {
  const { log } = opts;
  const checks = requestChecks(opts.bundleParent);
  function method<Req, Res>(req: Codec<Req>, res: Codec<Res>, fn: (r: Req) => Promise<Res | void>, name = fn.toString()): RawHandler {
    return async (payload) => {
      let request: Req;
      try {
        request = req.decode(payload);
      } catch (err) {
        throw new InvalidArgumentError(`${name}: cannot decode the request: ${(err as Error).message}`);
      }
      opts.onCall?.(name, request);
      try {
        await checks[name]?.(request as never);
        const out = await fn(request);
        return Buffer.from(res.encode((out ?? {}) as Res).finish());
      } catch (err) {
        // Failures only: a line for every call (a dozen per `ctr task exec`, each a write to the
        // log FIFO) cost ~2 ms of CPU per exec under -debug, and the Go shim logs no call.
        log?.debug(`task call failed: ${(err as Error).message}`, { call: name });
        throw err;
      }
    };
  }
  return {
    State: method(shim.StateRequest, shim.StateResponse, (r) => s.state(r), 'State'),
    Create: method(shim.CreateTaskRequest, shim.CreateTaskResponse, (r) => s.create(r), 'Create'),
    Start: method(shim.StartRequest, shim.StartResponse, (r) => s.start(r), 'Start'),
    Delete: method(shim.DeleteRequest, shim.DeleteResponse, (r) => s.delete(r), 'Delete'),
    Pids: method(shim.PidsRequest, shim.PidsResponse, (r) => s.pids(r), 'Pids'),
    Pause: method(shim.PauseRequest, Empty, (r) => s.pause(r), 'Pause'),
    Resume: method(shim.ResumeRequest, Empty, (r) => s.resume(r), 'Resume'),
    Checkpoint: method(shim.CheckpointTaskRequest, Empty, (r) => s.checkpoint(r), 'Checkpoint'),
    Kill: method(shim.KillRequest, Empty, (r) => s.kill(r), 'Kill'),
    Exec: method(shim.ExecProcessRequest, Empty, (r) => s.exec(r), 'Exec'),
    ResizePty: method(shim.ResizePtyRequest, Empty, (r) => s.resizePty(r), 'ResizePty'),
    CloseIO: method(shim.CloseIORequest, Empty, (r) => s.closeIO(r), 'CloseIO'),
    Update: method(shim.UpdateTaskRequest, Empty, (r) => s.update(r), 'Update'),
    Wait: method(shim.WaitRequest, shim.WaitResponse, (r) => s.wait(r), 'Wait'),
    Stats: method(shim.StatsRequest, shim.StatsResponse, (r) => s.stats(r), 'Stats'),
    Connect: method(shim.ConnectRequest, shim.ConnectResponse, (r) => s.connect(r), 'Connect'),
    Shutdown: method(shim.ShutdownRequest, Empty, (r) => s.shutdown(r), 'Shutdown'),
  };
}

export const TASK_SERVICE_NAMES = ['containerd.task.v2.Task', 'containerd.task.v3.Task'] as const;

export function taskServices(s: TaskService, opts: TaskMethodOptions = {}): RawService[] {
  const methods = taskMethods(s, opts);
  return TASK_SERVICE_NAMES.map((name) => ({ name, methods }));
}
