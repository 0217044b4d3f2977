// CRIU older than 4.2 cannot dump TCP sockets on kernels from 6.16 on: the check finds the TCP
// sockets a container's processes hold (/proc fds matched against their netns' TCP tables) and
// refuses such a dump before CRIU runs, naming both versions and the fix; anything else passes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { Code } from '../../src/errors';
import { assertCriuCanDumpTcp, criuDumpsTcp, kernelVersion } from '../../src/checkpoint/criu';
import { findTcpSockets, parseTcpTable, type TcpSocketUse } from '../../src/checkpoint/tcp-sockets';

const TCP_HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const listenLine = (inode: number, port: number) =>
  `   0: 00000000:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0`;

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-criu-tcp-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fake /proc/PID: fds (symlinks), a netns link, and TCP tables. */
function fakeProc(pid: number, fds: Record<number, string>, tcp: string[], tcp6: string[] = [], netns = 'net:[4026531840]'): void {
  const dir = path.join(tmp, String(pid));
  fs.mkdirSync(path.join(dir, 'fd'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'ns'));
  fs.mkdirSync(path.join(dir, 'net'));
  for (const [fd, target] of Object.entries(fds)) fs.symlinkSync(target, path.join(dir, 'fd', fd));
  fs.symlinkSync(netns, path.join(dir, 'ns', 'net'));
  fs.writeFileSync(path.join(dir, 'net', 'tcp'), [TCP_HEADER, ...tcp, ''].join('\n'));
  fs.writeFileSync(path.join(dir, 'net', 'tcp6'), [TCP_HEADER, ...tcp6, ''].join('\n'));
}

test('parseTcpTable: inode, local port and state of each socket', () => {
  const t = parseTcpTable([TCP_HEADER, listenLine(4242, 7000), '   1: 0100007F:1F90 0100007F:C350 01 0:0 0:0 0 0 0 4343 1', ''].join('\n'), 'tcp');
  expect(t.get('4242')).toEqual({ family: 'tcp', localPort: 7000, state: 'LISTEN' });
  expect(t.get('4343')).toEqual({ family: 'tcp', localPort: 8080, state: 'ESTABLISHED' });
});

test('findTcpSockets: only sockets in the TCP tables count; vanished processes are skipped', async () => {
  fakeProc(10, { 0: '/dev/null', 3: 'socket:[4242]', 4: 'socket:[999]', 5: 'pipe:[77]' }, [listenLine(4242, 7000)]);
  fakeProc(11, { 3: 'socket:[5555]' }, [], [listenLine(5555, 9000)], 'net:[4026532000]');
  fakeProc(12, { 1: 'socket:[999]' }, []); // a unix socket, say: not in any TCP table
  const found = await findTcpSockets([10, 11, 12, 13], tmp);
  expect(found).toEqual([
    { pid: 10, fd: 3, family: 'tcp', localPort: 7000, state: 'LISTEN' },
    { pid: 11, fd: 3, family: 'tcp6', localPort: 9000, state: 'LISTEN' },
  ]);
});

test('findTcpSockets on this process: a listening socket is found', async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const found = await findTcpSockets([process.pid]);
    expect(found).toContainEqual(expect.objectContaining({ pid: process.pid, family: 'tcp', localPort: port, state: 'LISTEN' }));
  } finally {
    server.close();
  }
});

describe('assertCriuCanDumpTcp', () => {
  const held: TcpSocketUse[] = [{ pid: 42, fd: 3, family: 'tcp', localPort: 7000, state: 'LISTEN' }];
  const old = { path: '/usr/sbin/criu', version: '4.1.1' };

  test('CRIU < 4.2, kernel ≥ 6.16, a TCP socket held: refused with both versions and the fix', async () => {
    const err = await assertCriuCanDumpTcp(old, async () => held, '6.18.0-1-amd64').catch((e: unknown) => e as Error & { code: Code });
    expect(err).toMatchObject({ code: Code.FailedPrecondition });
    expect(err!.message).toBe(
      'criu at /usr/sbin/criu is version 4.1.1, which cannot dump TCP sockets on kernel 6.18.0-1-amd64 (kernels from 6.16 on ' +
      'need CRIU 4.2 or newer; older ones fail with "sockets: Can\'t get 1:16 opt: Operation not supported"), and the container ' +
      'holds one: tcp port 7000 LISTEN (pid 42 fd 3). Install CRIU 4.2 or newer (contrib/setup.sh provides it) or point criu_path at one');
  });

  test('anything else passes, and the sockets are not even looked for when they cannot matter', async () => {
    let asked = 0;
    const sockets = async () => { asked++; return held; };
    await expect(assertCriuCanDumpTcp({ ...old, version: '4.2.0' }, sockets, '6.18.0')).resolves.toBeUndefined();
    await expect(assertCriuCanDumpTcp({ ...old, version: '4.2.1' }, sockets, '6.16.0')).resolves.toBeUndefined();
    await expect(assertCriuCanDumpTcp(old, sockets, '6.15.9-arch1')).resolves.toBeUndefined();
    await expect(assertCriuCanDumpTcp(old, sockets, 'weird')).resolves.toBeUndefined();
    expect(asked).toBe(0);
    await expect(assertCriuCanDumpTcp(old, async () => { asked++; return []; }, '6.16.1')).resolves.toBeUndefined();
    expect(asked).toBe(1);
  });

  test('kernel versions and the rule', () => {
    expect(kernelVersion('6.18.0-1-amd64')).toBe('6.18.0');
    expect(kernelVersion('6.16')).toBe('6.16.0');
    expect(kernelVersion('x')).toBeUndefined();
    expect(criuDumpsTcp(old, '6.16.0')).toBe(false);
    expect(criuDumpsTcp(old, '6.15.11')).toBe(true);
    expect(criuDumpsTcp({ ...old, version: '4.2.1' }, '6.18.0')).toBe(true);
  });
});
