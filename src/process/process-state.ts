// The state machine of one process (a container's init or an exec), with the transitions and
// refusals of containerd-shim-runc-v2 (pkg/process/{init,exec}_state.go). Refusals carry the
// Go shim's words and the FailedPrecondition code containerd's errdefs understands.
import { FailedPreconditionError } from '../errors';

export type ProcessStatus = 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | 'deleted';

export type Operation = 'start' | 'kill' | 'delete' | 'pause' | 'resume' | 'update' | 'checkpoint' | 'exec' | 'resize';

/** Which operations each state allows; anything else is refused with the message below. */
const ALLOWED: Record<ProcessStatus, ReadonlySet<Operation>> = {
  created: new Set(['start', 'kill', 'delete', 'update', 'resize']),
  running: new Set(['kill', 'pause', 'update', 'checkpoint', 'exec', 'resize']),
  pausing: new Set(['kill']),
  paused: new Set(['kill', 'resume', 'update', 'checkpoint']),
  stopped: new Set(['kill', 'delete']),
  deleted: new Set([]),
};

const REFUSAL: Partial<Record<ProcessStatus, Partial<Record<Operation, string>>>> = {
  created: {
    pause: 'cannot pause task in created state',
    resume: 'cannot resume task in created state',
    checkpoint: 'cannot checkpoint a task in created state',
    exec: 'cannot exec in a created state',
  },
  running: {
    start: 'cannot start a running process',
    delete: 'cannot delete a running process',
    resume: 'cannot resume a running process',
  },
  paused: {
    pause: 'cannot pause a paused container',
    start: 'cannot start a paused process',
    delete: 'cannot delete a paused process',
    exec: 'cannot exec in a paused state',
    resize: 'cannot resize a paused process',
  },
  stopped: {
    pause: 'cannot pause a stopped container',
    resume: 'cannot resume a stopped container',
    update: 'cannot update a stopped container',
    checkpoint: 'cannot checkpoint a stopped container',
    start: 'cannot start a stopped process',
    exec: 'cannot exec in a stopped state',
    resize: 'cannot resize a stopped container',
  },
  deleted: {},
};

export function assertAllowed(status: ProcessStatus, op: Operation): void {
  if (ALLOWED[status].has(op)) return;
  const msg = REFUSAL[status]?.[op] ?? `cannot ${op} a ${status} process`;
  throw new FailedPreconditionError(msg);
}

/** containerd.v1.types.Status numbers. */
export function statusNumber(status: ProcessStatus): number {
  switch (status) {
    case 'created': return 1;
    case 'running': return 2;
    case 'stopped': case 'deleted': return 3;
    case 'paused': return 4;
    case 'pausing': return 5;
  }
}
