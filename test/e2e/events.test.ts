// Issue 2, point 4: the task events a shim publishes, as `ctr events` shows them —
// /tasks/create, /tasks/start, /tasks/exit (right pid and exit status), /tasks/delete, in
// that order, for every task.
import { CtrEvent, EventStream } from '../helpers/containerd';
import { ctrRun, ctrRunDetached, expectExit, isGoShim, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';

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

  // Known race in the reference: containerd-shim-runc-v2 queues /tasks/delete for its
  // forwarder goroutine and is shut down right after Delete, so under containerd 2.1 the event
  // is often lost (seen in about half of the runs here; never under 1.7). Ferry must always
  // publish it; only for the Go shim on 2.1 is a missing /tasks/delete tolerated — when it
  // does arrive it is checked like any other.
  const deleteMayBeLost = isGoShim(lane) && lane.containerd === '2.1';

  async function taskEvents(id: string): Promise<CtrEvent[]> {
    try {
      await stream.waitFor((e) => e.topic === '/tasks/delete' && e.event.container_id === id, deleteMayBeLost ? 3000 : 10000);
    } catch (err) {
      if (!deleteMayBeLost) throw err;
      const evs = forContainer(stream, id);
      expect(evs.map((e) => e.topic)).toEqual(TASK_TOPICS.slice(0, 3));
      return [...evs, undefined as unknown as CtrEvent];
    }
    return forContainer(stream, id);
  }

  const topics = (evs: CtrEvent[]): string[] => evs.filter(Boolean).map((e) => e.topic);
  const expectedTopics = (evs: CtrEvent[]): string[] => (evs[3] ? TASK_TOPICS : TASK_TOPICS.slice(0, 3));

  test(`ctr run --rm sh -c 'exit 7': create, start, exit(7), delete in order [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ev-exit');
    expectExit(c, await ctrRun(c, lane, id, ['sh', '-c', 'exit 7']), 7);
    const evs = await taskEvents(id);
    expect(topics(evs)).toEqual(expectedTopics(evs));
    const [create, start, exit, del] = evs as [CtrEvent, CtrEvent, CtrEvent, CtrEvent];
    const pid = Number(create.event.pid);
    expect(pid).toBeGreaterThan(0);
    expect(create.event.bundle).toBe(c.bundleDir(id));
    expect(Number(start.event.pid)).toBe(pid);
    expect(Number(exit.event.pid)).toBe(pid);
    expect(exit.event.id).toBe(id);
    expect(exitStatusOf(exit)).toBe(7);
    expect(exit.event.exited_at).toBeDefined();
    if (del) {
      expect(Number(del.event.pid)).toBe(pid);
      expect(exitStatusOf(del)).toBe(7);
    }
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
    expect(topics(evs)).toEqual(expectedTopics(evs));
    const exit = evs[2]!;
    expect(Number(exit.event.pid)).toBe(row.pid);
    expect(exitStatusOf(exit)).toBe(137);
    if (evs[3]) expect(exitStatusOf(evs[3])).toBe(137);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`a successful task's exit event has status 0 (field omitted) [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ev-ok');
    expectExit(c, await ctrRun(c, lane, id, ['true']), 0);
    const evs = await taskEvents(id);
    expect(topics(evs)).toEqual(expectedTopics(evs));
    expect(exitStatusOf(evs[2]!)).toBe(0);
  });
});
