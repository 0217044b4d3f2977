import { FailedPreconditionError, Code } from '../../src/errors';
import { assertAllowed, statusNumber, type Operation, type ProcessStatus } from '../../src/process/process-state';
import { ShimProcess } from '../../src/process/shim-process';

const ALL_OPS: Operation[] = ['start', 'kill', 'delete', 'pause', 'resume', 'update', 'checkpoint', 'exec', 'resize'];

function refusal(status: ProcessStatus, op: Operation): string | null {
  try {
    assertAllowed(status, op);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as FailedPreconditionError).code).toBe(Code.FailedPrecondition);
    return (err as Error).message;
  }
}

describe('process state machine', () => {
  test.each([
    ['running', 'delete', 'cannot delete a running process'],
    ['running', 'start', 'cannot start a running process'],
    ['running', 'resume', 'cannot resume a running process'],
    ['created', 'pause', 'cannot pause task in created state'],
    ['created', 'checkpoint', 'cannot checkpoint a task in created state'],
    ['paused', 'delete', 'cannot delete a paused process'],
    ['paused', 'pause', 'cannot pause a paused container'],
    ['stopped', 'pause', 'cannot pause a stopped container'],
    ['stopped', 'start', 'cannot start a stopped process'],
    ['stopped', 'update', 'cannot update a stopped container'],
    ['stopped', 'checkpoint', 'cannot checkpoint a stopped container'],
  ] as [ProcessStatus, Operation, string][])('%s refuses %s with the Go shim\'s words', (status, op, msg) => {
    expect(refusal(status, op)).toBe(msg);
  });

  test('the allowed transitions of each state', () => {
    const allowed = (s: ProcessStatus) => ALL_OPS.filter((op) => refusal(s, op) === null);
    expect(allowed('created')).toEqual(['start', 'kill', 'delete', 'update', 'resize']);
    expect(allowed('running')).toEqual(['kill', 'pause', 'update', 'checkpoint', 'exec', 'resize']);
    expect(allowed('paused')).toEqual(['kill', 'resume', 'update', 'checkpoint']);
    expect(allowed('stopped')).toEqual(['kill', 'delete']);
    expect(allowed('deleted')).toEqual([]);
  });

  test('status numbers are containerd.v1.types.Status', () => {
    expect(statusNumber('created')).toBe(1);
    expect(statusNumber('running')).toBe(2);
    expect(statusNumber('stopped')).toBe(3);
    expect(statusNumber('paused')).toBe(4);
    expect(statusNumber('pausing')).toBe(5);
  });
});

class TestProcess extends ShimProcess {
  deleteWithoutExit() { this.markDeletedWithoutExit(); }
}

describe('ShimProcess exit', () => {
  const stdio = { stdin: '', stdout: '', stderr: '', terminal: false };

  test('the first exit is final; every waiter sees it', async () => {
    const p = new TestProcess('c1', 'c1', stdio);
    p.status = 'running';
    const waiters = [p.wait(), p.wait()];
    const at = new Date(1000);
    expect(p.setExited({ status: 3, exitedAt: at })).toBe(true);
    expect(p.setExited({ status: 137, exitedAt: new Date(2000) })).toBe(false);
    await Promise.all(waiters);
    expect(p.status).toBe('stopped');
    expect(p.exitStatus).toBe(3);
    expect(p.exitedAt).toBe(at);
    expect(() => p.check('delete')).not.toThrow();
    expect(() => p.check('pause')).toThrow('cannot pause a stopped container');
  });

  test('deleting a never-started process releases waiters', async () => {
    const p = new TestProcess('e1', 'c1', stdio);
    const w = p.wait();
    p.deleteWithoutExit();
    await w;
    expect(p.status).toBe('deleted');
    expect(p.isInit).toBe(false);
  });
});
