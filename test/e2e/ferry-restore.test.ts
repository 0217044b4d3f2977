// `ferry restore --import` of real archives, on containerd 1.7 and 2.1, into ferry's shim and into
// containerd's Go shim: Podman's `podman container checkpoint --export` (podman 4.3.1 from
// bookworm with runc and CRIU: the real producer), its zstd and plain flavours.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, Containerd } from '../helpers/containerd';
import { runFerry } from '../helpers/ferry-cli';
import { expectExit, uniqueId } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import { podmanCheckpointExport } from '../helpers/podman';

jest.setTimeout(240000);

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done';

async function readCount(c: Containerd, id: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('cat'), id, 'cat', '/tmp/count']);
    expectExit(c, r, 0);
    const n = Number.parseInt(r.stdout.trim(), 10);
    if (Number.isInteger(n)) return n;
    if (attempt >= 10) throw new Error(`bad count ${JSON.stringify(r.stdout)}`);
  }
}

async function removeContainer(c: Containerd, id: string): Promise<void> {
  await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
  await waitFor(async () => ((await c.ctr(['task', 'rm', id])).code === 0 || !(await c.ctr(['task', 'ls'])).stdout.includes(id) ? true : undefined), 15000, 200);
  await c.ctr(['container', 'rm', id]);
  await c.ctr(['snapshot', 'rm', id]);
}

describe.each(versions)('ferry restore --import of Podman archives on containerd %s', (version) => {
  let c: Containerd;
  let work: string;
  let stateDir: string;
  let zstdArchive: string;
  let atCheckpoint = 0;
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-restore-'));
    stateDir = path.join(work, 'state');
    c = await startContainerd({ version });
    zstdArchive = path.join(work, 'counter.tar.zst');
    await podmanCheckpointExport(uniqueId('ferry-pm'), `${COUNTER}`, zstdArchive, { settleMs: 3000 });
    atCheckpoint = 25; // 3 s at 10/s, less the start-up
  }, 180000);
  afterAll(async () => {
    await c?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }, 120000);

  test.each(['io.containerd.ferry.v2', 'io.containerd.runc.v2'])('a Podman zstd archive restores into %s and its counter continues', async (runtime) => {
    const id = uniqueId('pmr');
    const r = await runFerry(c, ['--json', 'restore', '--import', zstdArchive, '--name', id, '--runtime', runtime], { env: { FERRY_STATE_DIR: stateDir } });
    if (r.code !== 0) throw new Error(`restore failed: ${r.stderr}\n${c.logTail(30)}`);
    try {
      const result = JSON.parse(r.stdout) as { id: string; engine: string; runtime: string; pid: number };
      expect(result).toMatchObject({ id, engine: 'Podman', runtime });
      const first = await readCount(c, id);
      expect(first).toBeGreaterThanOrEqual(atCheckpoint);
      const later = await waitFor(async () => { const n = await readCount(c, id); return n > first + 2 ? n : undefined; }, 20000, 200);
      expect(later).toBeDefined();
    } finally {
      await removeContainer(c, id);
    }
  });
});
