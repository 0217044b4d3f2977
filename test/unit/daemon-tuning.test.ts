// The daemon's Node tuning: start adds MALLOC_ARENA_MAX for the daemon only (not when the
// administrator set it), and the daemon takes back exactly what start added.
import { DAEMON_NODE_ARGS, daemonEnv, dropAddedEnv } from '../../src/shim-actions/daemon-tuning';

test('the daemon gets the arena limit and takes it away again before it spawns anything', () => {
  const env = daemonEnv({ PATH: '/bin' });
  expect(env.MALLOC_ARENA_MAX).toBe('2');
  dropAddedEnv(env);
  expect(env).toEqual({ PATH: '/bin' });
});

test("an administrator's own MALLOC_ARENA_MAX is kept, for the daemon and its children", () => {
  const env = daemonEnv({ MALLOC_ARENA_MAX: '8' });
  expect(env.MALLOC_ARENA_MAX).toBe('8');
  dropAddedEnv(env);
  expect(env).toEqual({ MALLOC_ARENA_MAX: '8' });
});

test('V8 flags cap the young and old generations', () => {
  expect(DAEMON_NODE_ARGS).toEqual(['--max-semi-space-size=1', '--max-old-space-size=256']);
});
