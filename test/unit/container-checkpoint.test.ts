// A container's checkpoints run one at a time, and what CRIU's freeze would break (exec start,
// pause, resume) waits for them: Container.checkpoint / afterCheckpoint.
import { Container } from '../../src/service/container';

const container = () => new Container('c1', '/b', 'ns', {} as never, {} as never, {} as never, true, false);
const tick = () => new Promise((r) => setImmediate(r));

test('afterCheckpoint waits for a running checkpoint, and for one queued behind it', async () => {
  const c = container();
  const order: string[] = [];
  let endFirst!: () => void;
  let endSecond!: () => void;
  const first = c.checkpoint(() => new Promise<void>((r) => { order.push('first'); endFirst = r; }));
  const second = c.checkpoint(() => new Promise<void>((r) => { order.push('second'); endSecond = r; }));
  const waiter = c.afterCheckpoint().then(() => order.push('exec'));
  await tick();
  expect(order).toEqual(['first']);
  endFirst();
  await first;
  await tick();
  expect(order).toEqual(['first', 'second']);
  endSecond();
  await Promise.all([second, waiter]);
  expect(order).toEqual(['first', 'second', 'exec']);
});

test('a failed checkpoint releases the others', async () => {
  const c = container();
  await expect(c.checkpoint(async () => { throw new Error('criu died'); })).rejects.toThrow('criu died');
  await expect(c.checkpoint(async () => 7)).resolves.toBe(7);
  await c.afterCheckpoint();
});

test('without a checkpoint, afterCheckpoint resolves at once', async () => {
  await container().afterCheckpoint();
});
