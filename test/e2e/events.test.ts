// Issue 2, point 4: the task events a shim publishes, as `ctr events` shows them —
// /tasks/create, /tasks/start, /tasks/exit (right pid and exit status), /tasks/delete, in
// that order, for every task.
import { CtrEvent, EventStream } from '../helpers/containerd';
import { ctrRun, ctrRunDetached, expectExit, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';

jest.setTimeout(120000); // a project-level testTimeout is not honoured by jest 30

const TASK_TOPICS = ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete'];

// ctr prints events as Go's encoding/json renders the protobuf structs: snake_case fields,
// zero values omitted (an exit status of 0 has no exit_status field at all).
const exitStatusOf = (e: CtrEvent): number => Number(e.event.exit_status ?? 0);
const forContainer = (stream: EventStream, id: string): CtrEvent[] =>
  stream.events.filter((e) => TASK_TOPICS.includes(e.topic) && e.event.container_id === id);

describe.each(lanes())('events [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let stream: EventStream;
  beforeAll(async () => {
    stream = await containerd().events();
  });
  afterAll(async () => {
    await stream?.stop();
  });

  async function taskEvents(id: string): Promise<CtrEvent[]> {
    await stream.waitFor((e) => e.topic === '/tasks/delete' && e.event.container_id === id, 10000);
    return forContainer(stream, id);
  }

  test(`ctr run --rm sh -c 'exit 7': create, start, exit(7), delete in order [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ev-exit');
    expectExit(c, await ctrRun(c, lane, id, ['sh', '-c', 'exit 7']), 7);
    const evs = await taskEvents(id);
    expect(evs.map((e) => e.topic)).toEqual(TASK_TOPICS);
    const [create, start, exit, del] = evs as [CtrEvent, CtrEvent, CtrEvent, CtrEvent];
    const pid = Number(create.event.pid);
    expect(pid).toBeGreaterThan(0);
    expect(create.event.bundle).toBe(c.bundleDir(id));
    expect(Number(start.event.pid)).toBe(pid);
    expect(Number(exit.event.pid)).toBe(pid);
    expect(exit.event.id).toBe(id);
    expect(exitStatusOf(exit)).toBe(7);
    expect(exit.event.exited_at).toBeDefined();
    expect(Number(del.event.pid)).toBe(pid);
    expect(exitStatusOf(del)).toBe(7);
  });

  test(`run -d, SIGKILL, rm: exit event carries the pid and status 137 [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ev-kill');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
    const row = await waitForStatus(c, id, 'RUNNING');
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    const evs = await taskEvents(id);
    expect(evs.map((e) => e.topic)).toEqual(TASK_TOPICS);
    const exit = evs[2]!;
    expect(Number(exit.event.pid)).toBe(row.pid);
    expect(exitStatusOf(exit)).toBe(137);
    expect(exitStatusOf(evs[3]!)).toBe(137);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`a successful task's exit event has status 0 (field omitted) [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ev-ok');
    expectExit(c, await ctrRun(c, lane, id, ['true']), 0);
    const evs = await taskEvents(id);
    expect(evs.map((e) => e.topic)).toEqual(TASK_TOPICS);
    expect(exitStatusOf(evs[2]!)).toBe(0);
  });
});
