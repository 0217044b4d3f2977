// The daemon's Node tuning: start adds MALLOC_ARENA_MAX for the daemon only (not when the
// administrator set it), and the daemon takes back exactly what start added.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { daemonEnv, dropAddedEnv } from '../../src/shim-actions/daemon-tuning';

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

test("the launcher's node flags cap V8's young and old generations", () => {
  const launcher = fs.readFileSync(path.join(__dirname, '..', '..', 'shim', 'containerd-shim-ferry-v2'), 'utf8');
  const flags = /^node_flags='([^']*)'$/m.exec(launcher)![1]!.split(' ');
  expect(flags).toEqual(expect.arrayContaining(['--max-semi-space-size=1', '--max-old-space-size=256']));
});
