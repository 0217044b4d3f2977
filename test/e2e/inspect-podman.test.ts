// Issue 8: `ferry inspect` of real Podman archives. Podman 4.3.1 (bookworm) runs a container
// with runc: sh with a subshell holding /tmp/held open, a busybox nc listening on a TCP port and
// a second nc connected to it (an ESTABLISHED pair), and an environment variable; it is
// checkpointed with --tcp-established and exported twice, zstd (Podman's default, leaving it
// running) and --compress none. Each archive is inspected by `ferry inspect --format json --all`
// and by checkpointctl 1.3.0 (`inspect --format json --all`), and the two are compared key by key
// for what both show: engine, name, image, id, runtime, created, sizes, statistics, process tree,
// files, sockets, mounts. ferry also shows what 1.3 leaves out and the tests check it against
// Podman itself: network.status (IP, MAC, gateway, as checkpointctl HEAD shows it), the command
// lines and environment (checkpointctl 1.3 reads CRIU 4.2's pagemaps as empty).
// Podman 4.3's archive has the layout the reference describes for Podman 5 (checkpoint-formats.md
// §1.6): artifacts/, devshm-checkpoint.tar, full libpod config.dump (no checkpointedTime),
// spec.dump with io.container.manager=libpod, network.status, stats-dump, ctr.log, rootfs-diff.tar.
// Runs once (Podman does not use the lanes' containerd).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { formatIp } from '../../src/format/criu/explore';
import { FERRY_CLI } from '../helpers/ferry-cli';
import { loadPodmanTestImage, PODMAN_RUN_FLAGS, podmanCmd, removePodmanLeftovers } from '../helpers/podman-checkpoint';
import { waitFor } from '../helpers/procfs';

jest.setTimeout(240000);
const run = promisify(execFile);

interface Ps { pid: number; command: string; cmdline?: string; environment_variables?: Record<string, string>; children?: Ps[] }
type Json = Record<string, unknown> & { process_tree?: Ps; sockets?: { pid: number; open_sockets?: { protocol?: string; data: Record<string, unknown> }[] }[]; file_descriptors?: { pid: number; open_files?: { type: string; fd: string; path: string }[] }[] };

const flatten = (p: Ps | undefined): Ps[] => (p ? [p, ...(p.children ?? []).flatMap(flatten)] : []);
const shape = (p: Ps): unknown => ({ pid: p.pid, command: p.command, children: [...(p.children ?? [])].sort((a, b) => a.pid - b.pid).map(shape) });

const PORT = 9000 + (process.pid % 1000);
const VAR = 'FERRY_PODMAN_VAR';
const VALUE = 'podman-forensic-7';
// busybox nc ends its connection when its stdin ends: both ends read from endless pipes.
const FOREVER = 'while :; do sleep 1; done';
const SCRIPT = `(exec 4>/tmp/held; ${FOREVER}) & (${FOREVER}) | nc -l -p ${PORT} & sleep 1; (${FOREVER}) | nc 127.0.0.1 ${PORT} & ${FOREVER}`;

/**
 * How checkpointctl renders an IPv6 address: go-criu's crit processIP (v7 in checkpointctl 1.3,
 * still at v8 HEAD) writes each of the four words to the first four bytes, so only the last word
 * survives, at the front: ::ffff:127.0.0.1 comes out as 7f00:1::. ferry shows the address; for
 * the key-by-key comparison ferry's address is put through the same rendering.
 */
function critRendering(addr: unknown): unknown {
  if (typeof addr !== 'string' || !addr.includes(':')) return addr;
  const m = /^::ffff:(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(addr);
  if (!m) throw new Error(`no crit rendering known for ${addr}`);
  return formatIp([Buffer.from(m.slice(1).map(Number)).readUInt32LE(0), 0, 0, 0]);
}

const critSockets = (sockets: Json['sockets']) => sockets?.map((s) => ({
  ...s, open_sockets: s.open_sockets?.map((o) => ({ ...o, data: { ...o.data, ...('src' in o.data ? { src: critRendering(o.data.src) } : {}), ...('dst' in o.data ? { dst: critRendering(o.data.dst) } : {}) } })),
}));

async function ferryJson(file: string): Promise<Json> {
  const { stdout } = await run(process.execPath, [FERRY_CLI, 'inspect', '--format', 'json', '--all', file], { maxBuffer: 64 << 20 });
  const arr = JSON.parse(stdout) as Json[];
  expect(arr).toHaveLength(1);
  return arr[0];
}

async function checkpointctlJson(file: string): Promise<Json> {
  const { stdout } = await run('checkpointctl', ['inspect', '--format', 'json', '--all', file], { maxBuffer: 64 << 20 });
  const arr = JSON.parse(stdout) as Json[];
  expect(arr).toHaveLength(1);
  return arr[0];
}

describe('ferry inspect of Podman archives (podman 4.3.1, runc, CRIU 4.2)', () => {
  const image = `localhost/ferry-inspect-${process.pid}:latest`;
  const name = `ferry-inspect-pm-${process.pid}`;
  let tmp = '';
  let zstd = '';
  let plain = '';
  let podman: { id: string; created: string; ip: string; mac: string; gateway: string; prefix: number; network: string };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-inspect-podman-'));
    zstd = path.join(tmp, 'checkpoint.tar.zst');
    plain = path.join(tmp, 'checkpoint.tar');
    await loadPodmanTestImage(image);
    await podmanCmd(['run', '-d', ...PODMAN_RUN_FLAGS, '--name', name, '--env', `${VAR}=${VALUE}`, image, 'sh', '-c', SCRIPT]);
    // The pair is connected once /proc/net/tcp has the client's socket to the port in state 01
    // (ESTABLISHED); busybox nc listens on IPv6, so the server's end is in /proc/net/tcp6.
    const hex = PORT.toString(16).toUpperCase().padStart(4, '0');
    const up = await waitFor(async () => {
      const tcp = await podmanCmd(['exec', name, 'cat', '/proc/net/tcp']).catch(() => '');
      return new RegExp(`0100007F:${hex} 01 `).test(tcp) || undefined;
    }, 30000, 300);
    if (!up) throw new Error('the nc pair never connected');
    const info = JSON.parse(await podmanCmd(['inspect', name])) as { Id: string; Created: string; NetworkSettings: { Networks: Record<string, { IPAddress: string; MacAddress: string; Gateway: string; IPPrefixLen: number }> } }[];
    const [network, net] = Object.entries(info[0].NetworkSettings.Networks)[0];
    podman = { id: info[0].Id, created: info[0].Created, ip: net.IPAddress, mac: net.MacAddress, gateway: net.Gateway, prefix: net.IPPrefixLen, network };
    await podmanCmd(['container', 'checkpoint', '--leave-running', '--tcp-established', '--export', zstd, name]);
    await podmanCmd(['container', 'checkpoint', '--tcp-established', '--compress', 'none', '--export', plain, name]);
  }, 240000);
  afterAll(async () => {
    await removePodmanLeftovers([name], image);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }, 120000);

  test.each([['zstd (default)', () => zstd], ['--compress none', () => plain]])('%s: what ferry and checkpointctl both show agrees; ferry adds the network, command lines and environment', async (_kind, file) => {
    const archive = file();
    const magic = fs.readFileSync(archive).subarray(0, 4);
    expect(magic.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe(archive === zstd);
    const j = await ferryJson(archive);
    const k = await checkpointctlJson(archive);

    // Against Podman itself.
    expect(j).toMatchObject({ engine: 'Podman', container_name: name, image, id: podman.id, runtime: 'runc', created: podman.created.replace(/\.\d+/, '') });
    expect(j.ip).toBe(podman.ip);
    expect(j.mac).toBe(podman.mac);
    expect(j.networks).toEqual([{ name: podman.network, interfaces: { eth0: { ip: `${podman.ip}/${podman.prefix}`, mac: podman.mac, gateway: podman.gateway } } }]);

    // The processes, files and sockets.
    const procs = flatten(j.process_tree);
    const root = j.process_tree!;
    expect(root.command).toBe('sh');
    expect(root.cmdline).toBe(`sh -c ${SCRIPT} `);
    expect(root.environment_variables?.[VAR]).toBe(VALUE);
    const ncs = procs.filter((p) => p.command === 'nc');
    expect(ncs.map((p) => p.cmdline).sort()).toEqual([`nc -l -p ${PORT} `, `nc 127.0.0.1 ${PORT} `]);
    const listener = ncs.find((p) => p.cmdline!.includes('-l'))!;
    const client = ncs.find((p) => !p.cmdline!.includes('-l'))!;
    const holder = procs.find((p) => flatten(p).length === 2 && p.command === 'sh' && j.file_descriptors!.find((f) => f.pid === p.pid)?.open_files?.some((o) => o.path === '/tmp/held'));
    expect(holder).toBeDefined();
    const socketsOf = (pid: number) => j.sockets!.find((s) => s.pid === pid)?.open_sockets ?? [];
    const loopback = expect.stringMatching(/^(::ffff:)?127\.0\.0\.1$/);
    expect(socketsOf(listener.pid)).toContainEqual(expect.objectContaining({ protocol: 'TCP', data: expect.objectContaining({ state: 'ESTABLISHED', src: loopback, src_port: PORT, dst: loopback }) }));
    const out = socketsOf(client.pid).find((s) => s.data.state === 'ESTABLISHED');
    expect(out?.data).toMatchObject({ type: 'TCP', src: '127.0.0.1', dst: '127.0.0.1', dst_port: PORT });
    // The two ends are one connection.
    expect(socketsOf(listener.pid)).toContainEqual(expect.objectContaining({ data: expect.objectContaining({ dst_port: out!.data.src_port }) }));

    // checkpointctl 1.3.0, key by key, where both show it.
    for (const key of ['container_name', 'image', 'id', 'runtime', 'created', 'checkpointed', 'engine', 'checkpoint_size', 'statistics', 'file_descriptors', 'mounts']) {
      expect({ key, value: j[key] }).toEqual({ key, value: k[key] });
    }
    expect(critSockets(j.sockets)).toEqual(k.sockets);
    expect(JSON.stringify(k.sockets)).toContain('"7f00:1::"'); // crit's rendering of ::ffff:127.0.0.1
    expect(j.statistics).toBeDefined();
    expect(shape(j.process_tree!)).toEqual(shape(k.process_tree!));
    for (const key of ['ip', 'mac', 'networks']) {
      if (k[key] !== undefined) expect({ key, value: j[key] }).toEqual({ key, value: k[key] });
    }
    for (const p of flatten(k.process_tree)) {
      const ours = procs.find((q) => q.pid === p.pid)!;
      if (p.cmdline !== undefined && p.cmdline.trim() !== '') expect(ours.cmdline).toBe(p.cmdline);
      if (p.environment_variables !== undefined) expect(ours.environment_variables).toEqual(p.environment_variables);
    }

    // The tree for people names the network as checkpointctl HEAD does.
    const { stdout: tree } = await run(process.execPath, [FERRY_CLI, 'inspect', archive]);
    expect(tree).toContain(`${podman.network} (eth0)`);
    expect(tree).toContain(`Gateway: ${podman.gateway}`);
  });
});
