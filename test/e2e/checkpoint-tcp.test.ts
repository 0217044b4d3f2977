// Issue 11, item 8 (CRIU): a container holding a TCP socket. On this machine's kernel (≥ 6.16)
// CRIU before 4.2 cannot dump one (`sockets: Can't get 1:16 opt: Operation not supported`);
// setup installs CRIU 4.2.1, with which a container listening on a port (busybox nc) is
// checkpointed and restored and the restored listener answers. A CRIU that reports an older
// version (a criu_path wrapper saying "Version: 4.1.1" that runs the real CRIU for everything
// else, recording those calls) is refused by ferry before CRIU dumps anything, with both versions
// and the fix; the same old-reporting CRIU still checkpoints a container without TCP sockets.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Containerd } from '../helpers/containerd';
import { ctrRunDetached, expectExit, FERRY_RUNTIME, lanes, taskRow, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';

jest.setTimeout(180000);

const PORT = 7000;
const PORT_HEX = PORT.toString(16).toUpperCase().padStart(4, '0');
/** lo is down in a fresh network namespace: bring it up (CAP_NET_ADMIN), then listen. */
const LISTENER = ['sh', '-c', `ip link set lo up && nc -l -p ${PORT} > /tmp/received; while :; do sleep 1; done`];
const LISTENER_FLAGS = ['--cap-add', 'CAP_NET_ADMIN'];

async function listening(c: Containerd, id: string): Promise<boolean> {
  // busybox nc listens on :: (dual stack) where IPv6 is on: tcp6 lists it then.
  const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('tcp'), id, 'cat', '/proc/net/tcp', '/proc/net/tcp6']);
  return r.code === 0 && new RegExp(`:${PORT_HEX} 0+:0000 0A `).test(r.stdout);
}

async function waitListening(c: Containerd, id: string): Promise<void> {
  if (!(await waitFor(() => listening(c, id), 20000, 200))) throw new Error(`${id} never listened on ${PORT}\n${c.logTail(20)}`);
}

async function removeTask(c: Containerd, id: string): Promise<void> {
  const row = await taskRow(c, id);
  if (row && row.status !== 'STOPPED') {
    await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    await waitForStatus(c, id, 'STOPPED');
  }
  if (row) expectExit(c, await c.ctr(['task', 'rm', id]), 0);
}

describe.each(lanes())('checkpoint with a TCP socket [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);

  test(`a container listening on a TCP port checkpoints and restores with CRIU ≥ 4.2; the restored listener answers [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('tcp');
    const ref = `ckpt/tcp-${process.pid}-${id}:v1`;
    expectExit(c, await ctrRunDetached(c, lane, id, LISTENER, LISTENER_FLAGS), 0);
    await waitForStatus(c, id, 'RUNNING');
    await waitListening(c, id);
    expectExit(c, await c.ctr(['container', 'checkpoint', '--task', '--rw', '--image', id, ref], { timeoutMs: 90000 }), 0);
    await removeTask(c, id);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);

    expectExit(c, await c.ctr(['container', 'restore', '--live', '--rw', id, ref], { timeoutMs: 90000 }), 0);
    await waitForStatus(c, id, 'RUNNING');
    expect(await listening(c, id)).toBe(true);
    // After the restore lo is down again (so with the Go shim too); the restored socket is bound
    // to the wildcard address and answers once lo is up.
    expectExit(c, await c.ctr(['task', 'exec', '--exec-id', uniqueId('lo'), id, 'ip', 'link', 'set', 'lo', 'up']), 0);
    const send = await c.ctr(['task', 'exec', '--exec-id', uniqueId('send'), id, 'sh', '-c', `echo through-the-restored-socket | timeout 10 nc 127.0.0.1 ${PORT}`]);
    expectExit(c, send, 0);
    const got = await waitFor(async () => {
      const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('cat'), id, 'cat', '/tmp/received']);
      return r.stdout.includes('through-the-restored-socket') ? r.stdout : undefined;
    }, 10000, 200);
    expect(got).toBe('through-the-restored-socket\n');
    await removeTask(c, id);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    expectExit(c, await c.ctr(['image', 'rm', '--sync', ref]), 0);
  });
});

const ferryLanes = lanes().filter((l) => l.runtime === FERRY_RUNTIME);
const describeFerry = ferryLanes.length ? describe.each(ferryLanes) : describe.skip.each([{ name: 'no ferry lane' } as Lane]);

// ferry only: the Go shim has no CRIU check (it would fail inside CRIU).
describeFerry('CRIU too old for a TCP socket on this kernel [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  let dir: string;
  let config: string;
  let wrapper: string;
  const calls = () => (fs.existsSync(path.join(dir, 'calls')) ? fs.readFileSync(path.join(dir, 'calls'), 'utf8').split('\n').filter(Boolean) : []);
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-oldcriu-'));
    wrapper = path.join(dir, 'criu');
    fs.writeFileSync(wrapper, [
      '#!/bin/sh',
      '# Says it is CRIU 4.1.1 (what Debian trixie ships); anything else runs the real CRIU and is recorded.',
      'if [ "$1" = "--version" ]; then echo "Version: 4.1.1"; exit 0; fi',
      `printf '%s\\n' "$*" >> ${JSON.stringify(path.join(dir, 'calls'))}`,
      'exec /usr/sbin/criu "$@"',
      '',
    ].join('\n'), { mode: 0o755 });
    config = path.join(dir, 'runtime.toml');
    fs.writeFileSync(config, `CriuPath = ${JSON.stringify(wrapper)}\n`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test(`the dump is refused before CRIU runs, naming the kernel, both CRIU versions and the fix [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('oldcriu');
    expectExit(c, await ctrRunDetached(c, lane, id, LISTENER, [...LISTENER_FLAGS, '--runtime-config-path', config]), 0);
    await waitForStatus(c, id, 'RUNNING');
    await waitListening(c, id);
    const r = await c.ctr(['container', 'checkpoint', '--task', '--image', id, `ckpt/oldcriu-${process.pid}-${id}:v1`], { timeoutMs: 90000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`criu at ${wrapper} is version 4.1.1, which cannot dump TCP sockets on kernel ${os.release()}`);
    expect(r.stderr).toContain('kernels from 6.16 on need CRIU 4.2 or newer');
    expect(r.stderr).toMatch(new RegExp(`the container holds one: tcp6? port ${PORT} LISTEN \\(pid \\d+ fd \\d+\\)`));
    expect(r.stderr).toContain('Install CRIU 4.2 or newer (contrib/setup.sh provides it)');
    // CRIU was never run for a dump, and the container is untouched: running, still listening.
    expect(calls()).toEqual([]);
    expect((await taskRow(c, id))?.status).toBe('RUNNING');
    expect(await listening(c, id)).toBe(true);
    await removeTask(c, id);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`the same CRIU still checkpoints a container without TCP sockets [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('oldcriu-notcp');
    const ref = `ckpt/oldcriu-notcp-${process.pid}-${id}:v1`;
    expectExit(c, await ctrRunDetached(c, lane, id, ['sh', '-c', 'while :; do sleep 1; done'], ['--runtime-config-path', config]), 0);
    await waitForStatus(c, id, 'RUNNING');
    const before = calls().length;
    expectExit(c, await c.ctr(['container', 'checkpoint', '--task', '--image', id, ref], { timeoutMs: 90000 }), 0);
    // runc ran the (real) CRIU through the wrapper.
    expect(calls().length).toBeGreaterThan(before);
    expect((await taskRow(c, id))?.status).toBe('RUNNING');
    await removeTask(c, id);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    expectExit(c, await c.ctr(['image', 'rm', '--sync', ref]), 0);
  });
});
