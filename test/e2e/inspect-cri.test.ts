// Issue 8: `ferry inspect` of a real containerd CRI checkpoint archive — what kubelet's
// checkpoint API leaves in /var/lib/kubelet/checkpoints. containerd 2.1 with CRI runs the
// counter pod (test/helpers/cri-checkpoint.ts: a pod "counters" in namespace "default", its
// container "counter" running COUNTER_COMMAND) with ferry's runtime handler (runc's on the
// Go-shim lane), and CheckpointContainer writes the archive. ferry must name the container from
// io.kubernetes.cri.container-name, the pod and namespace from the sandbox annotations, show
// the root-fs diff (a gzip OCI layer despite its name) by its size, CRIU's statistics from
// stats-dump, the process tree and the counter's command line; checkpointctl 1.3.0 `inspect
// --all` of the same archive must agree key by key on everything both show, and `ferry list`
// lists it as checkpointctl's list does. containerd 2.1 lanes only (1.7's CRI cannot checkpoint).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { COUNTER_COMMAND } from '../helpers/cri';
import { CRI_HANDLERS } from '../helpers/cri-config';
import { makeCriCheckpointArchive } from '../helpers/cri-checkpoint';
import { FERRY_CLI } from '../helpers/ferry-cli';
import { isGoShim, lanes, type Lane } from '../helpers/lanes';

jest.setTimeout(300000);
const run = promisify(execFile);

interface Ps { pid: number; command: string; cmdline?: string; children?: Ps[] }
type Json = Record<string, unknown> & { process_tree?: Ps; metadata?: { pod_name?: string; kubernetes_namespace?: string; annotations?: Record<string, string> }; checkpoint_size: Record<string, number> };

const shape = (p: Ps): unknown => ({ pid: p.pid, command: p.command, children: [...(p.children ?? [])].sort((a, b) => a.pid - b.pid).map(shape) });

async function json(cmd: string, args: string[]): Promise<Json> {
  const { stdout } = await run(cmd, args, { maxBuffer: 64 << 20 });
  const arr = JSON.parse(stdout) as Json[];
  expect(arr).toHaveLength(1);
  return arr[0];
}

describe.each(lanes().filter((l) => l.containerd === '2.1'))('ferry inspect of a containerd CRI checkpoint archive [$name]', (lane: Lane) => {
  let tmp = '';
  let dir = '';
  let archive: string;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-inspect-cri-'));
    dir = path.join(tmp, 'checkpoints');
    fs.mkdirSync(dir);
    archive = path.join(dir, 'checkpoint-counters_default-counter-2026-01-01T00:00:00Z.tar');
    await makeCriCheckpointArchive(archive, { handler: isGoShim(lane) ? CRI_HANDLERS.runc : CRI_HANDLERS.ferry });
  }, 300000);
  afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

  test('engine containerd, the CRI names, the gzip root-fs diff by size, statistics, the tree; checkpointctl agrees; ferry list lists it', async () => {
    const spec = JSON.parse((await run('tar', ['-xOf', archive, 'spec.dump'], { maxBuffer: 16 << 20 })).stdout) as { annotations: Record<string, string> };
    const config = JSON.parse((await run('tar', ['-xOf', archive, 'config.dump'])).stdout) as Record<string, string>;
    const listing = (await run('tar', ['-tvf', archive])).stdout;
    const diffSize = Number(/^\S+\s+\S+\s+(\d+)\s.*\srootfs-diff\.tar$/m.exec(listing)?.[1]);
    const diffHead = (await run('sh', ['-c', `tar -xOf '${archive}' rootfs-diff.tar | head -c 2 | od -An -tx1`])).stdout.trim();
    expect(diffHead).toBe('1f 8b'); // containerd's CRI writes the RW layer as an OCI tar+gzip layer

    const j = await json(process.execPath, [FERRY_CLI, 'inspect', '--format', 'json', '--all', archive]);
    expect(j).toMatchObject({
      engine: 'containerd', container_name: 'counter', id: config.id, image: config.rootfsImageName, runtime: config.runtime,
      metadata: { pod_name: 'counters', kubernetes_namespace: 'default' },
    });
    expect(spec.annotations['io.kubernetes.cri.container-name']).toBe('counter');
    expect(j.metadata?.pod_name).toBe(spec.annotations['io.kubernetes.cri.sandbox-name']);
    expect(j.checkpoint_size.root_fs_diff_size).toBe(diffSize);
    expect(j.statistics).toMatchObject({ pages_written: expect.any(Number), freezing_time: expect.any(Number) });
    const root = j.process_tree!;
    expect(root.command).toBe('sh');
    expect(root.cmdline).toBe(`${COUNTER_COMMAND.join(' ')} `);

    const k = await json('checkpointctl', ['inspect', '--format', 'json', '--all', archive]);
    for (const key of ['container_name', 'image', 'id', 'runtime', 'created', 'checkpointed', 'engine', 'checkpoint_size', 'statistics', 'file_descriptors', 'sockets', 'mounts']) {
      expect({ key, value: j[key] }).toEqual({ key, value: k[key] });
    }
    expect(shape(root)).toEqual(shape(k.process_tree!));

    // ferry list, as checkpointctl list.
    const ours = (await run(process.execPath, [FERRY_CLI, 'list', dir])).stdout;
    const theirs = (await run('checkpointctl', ['list', dir])).stdout;
    // ferry: columns two spaces apart; checkpointctl: a table with | between the cells.
    const line = (out: string) => out.split('\n').find((l) => l.includes(path.basename(archive))) ?? '';
    const ourRow = line(ours).trim().split(/\s{2,}/);
    const theirRow = line(theirs).split('|').map((c) => c.trim()).filter(Boolean);
    expect(ourRow.slice(0, 4)).toEqual(['default', 'counters', 'counter', 'containerd']);
    expect(ourRow).toEqual(theirRow);
  });
});
