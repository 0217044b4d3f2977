// listChildren against real processes. Re-parented grandchildren (the subreaper case) are
// covered in native.test.ts, in a separate process that becomes a subreaper.
import { spawn, ChildProcess } from 'child_process';
import { listChildren } from '../../src/sys/children';

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((res) => child.on('exit', () => res()));
}

test('lists the children we spawned, zombies until reaped, and not after', async () => {
  const a = spawn('sleep', ['30'], { stdio: 'ignore' });
  const b = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const listed = listChildren();
    expect(listed).toEqual(expect.arrayContaining([a.pid, b.pid]));
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed.every((pid) => Number.isInteger(pid) && pid > 0)).toBe(true);
  } finally {
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  }
  await Promise.all([exitOf(a), exitOf(b)]); // libuv reaped them
  const after = listChildren();
  expect(after).not.toContain(a.pid);
  expect(after).not.toContain(b.pid);
});

test('does not list grandchildren', async () => {
  const sh = spawn('sh', ['-c', 'sleep 30 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const grandchild = await new Promise<number>((res) => sh.stdout!.once('data', (d) => res(Number(String(d).trim()))));
    const listed = listChildren();
    expect(listed).toContain(sh.pid);
    expect(listed).not.toContain(grandchild);
    process.kill(grandchild, 'SIGKILL');
  } finally {
    sh.kill('SIGKILL');
  }
  await exitOf(sh);
});
