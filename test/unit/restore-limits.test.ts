// The bounds on `runc restore` (restore-limits.ts, Runc.run's timeoutMs): the time limit from
// the environment, the mount table parse that finds what a cut-off restore left mounted, and
// killing a process tree.
import { spawn } from 'node:child_process';
import { DEFAULT_RESTORE_TIMEOUT_SECONDS, mountPointsUnder, restoreTimeoutMs, RESTORE_TIMEOUT_ENV } from '../../src/checkpoint/restore-limits';
import { processTree } from '../../src/sys/children';
import { Runc } from '../../src/runc/runc';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

test('the time limit comes from FERRY_RESTORE_TIMEOUT_SECONDS; missing or invalid values give the default', () => {
  expect(restoreTimeoutMs({ [RESTORE_TIMEOUT_ENV]: '7' })).toBe(7000);
  expect(restoreTimeoutMs({ [RESTORE_TIMEOUT_ENV]: '0.5' })).toBe(500);
  for (const v of [undefined, '', '0', '-3', 'soon']) {
    expect(restoreTimeoutMs({ [RESTORE_TIMEOUT_ENV]: v })).toBe(DEFAULT_RESTORE_TIMEOUT_SECONDS * 1000);
  }
});

test('mountPointsUnder: the dir itself and below it, deepest first, escapes decoded, neighbours not', () => {
  const mountinfo = [
    '22 1 0:21 / /run rw - tmpfs tmpfs rw',
    '30 22 0:40 / /run/x/state/abc/criu-root rw - overlay overlay rw',
    '31 22 0:41 / /run/x/state/abc rw - tmpfs none rw',
    '32 31 0:42 / /run/x/state/abc/with\\040space/y rw - tmpfs none rw',
    '33 22 0:43 / /run/x/state/abcd rw - tmpfs none rw',
  ].join('\n');
  expect(mountPointsUnder('/run/x/state/abc', mountinfo)).toEqual([
    '/run/x/state/abc/with space/y', '/run/x/state/abc/criu-root', '/run/x/state/abc',
  ]);
});

test('processTree lists a process and all below it; runc killed at its time limit takes them along', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-limits-'));
  try {
    // A "runc" that starts a grandchild and waits forever, like runc waiting on a stuck CRIU.
    const fake = path.join(tmp, 'runc');
    fs.writeFileSync(fake, '#!/bin/sh\n(sleep 300; :) &\nsleep 300\n', { mode: 0o755 });
    const sh = spawn('/bin/sh', ['-c', '(sleep 300; :) & sleep 300']);
    await new Promise((r) => setTimeout(r, 300));
    expect(processTree(sh.pid!).length).toBeGreaterThanOrEqual(3);
    sh.kill('SIGKILL');

    const runc = new Runc({ binary: fake, root: tmp, logPath: path.join(tmp, 'log.json') });
    const t0 = Date.now();
    const err = await runc.restore('c1', tmp, { imagePath: tmp, workPath: tmp, pidFile: path.join(tmp, 'pid'), timeoutMs: 500 }).catch((e: unknown) => e as Error);
    expect(Date.now() - t0).toBeLessThan(10000);
    expect((err as Error).message).toMatch(/^OCI runtime restore failed: no result within 1 s; runc and the [2-9] processes under it \(CRIU\) were killed$/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
