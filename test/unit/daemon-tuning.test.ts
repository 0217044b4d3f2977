// The daemon's Node tuning: the launcher adds MALLOC_ARENA_MAX for the node that goes on as the
// daemon (not when the administrator set it), and the daemon takes back exactly what was added.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dropAddedEnv } from '../../src/shim-actions/daemon-tuning';
import { launcherNodeFlags, SHIM_LAUNCHER as LAUNCHER } from '../helpers/launcher-flags';


/** Runs the launcher's `start` with a stand-in `node` that answers with its environment. */
function startEnv(env: Record<string, string>): Record<string, string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-launcher-'));
  try {
    fs.writeFileSync(path.join(dir, 'node'), '#!/bin/sh\nenv | grep -E "^(MALLOC_ARENA_MAX|FERRY_DAEMON_ADDED_ENV)="\nprintf "\\nferry-start-exit=0"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const out = execFileSync('/bin/sh', [LAUNCHER, '-namespace', 'n', '-id', 'x', '-address', '/run/x.sock', 'start'], {
      cwd: dir, env: { PATH: `${dir}:/usr/bin:/bin`, ...env }, encoding: 'utf8',
    });
    return Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => l.split('=', 2) as [string, string]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the launcher gives the daemon two arenas and says so; the daemon takes it away before it spawns anything', () => {
  const env = startEnv({});
  expect(env).toEqual({ MALLOC_ARENA_MAX: '2', FERRY_DAEMON_ADDED_ENV: 'MALLOC_ARENA_MAX' });
  const daemonEnv: NodeJS.ProcessEnv = { PATH: '/bin', ...env };
  dropAddedEnv(daemonEnv);
  expect(daemonEnv).toEqual({ PATH: '/bin' });
});

test("an administrator's own MALLOC_ARENA_MAX is kept, for the daemon and its children", () => {
  const env = startEnv({ MALLOC_ARENA_MAX: '8' });
  expect(env).toEqual({ MALLOC_ARENA_MAX: '8' });
  const daemonEnv: NodeJS.ProcessEnv = { ...env };
  dropAddedEnv(daemonEnv);
  expect(daemonEnv).toEqual({ MALLOC_ARENA_MAX: '8' });
});

test("the launcher's node flags cap V8's young and old generations", () => {
  expect(launcherNodeFlags()).toEqual(expect.arrayContaining(['--max-semi-space-size=1', '--max-old-space-size=256']));
});
