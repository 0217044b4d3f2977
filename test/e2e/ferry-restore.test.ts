// `ferry restore --import` and `ferry run --checkpoint` of real archives, on containerd 1.7 and
// 2.1, into ferry's shim and into containerd's Go shim. The archives are Podman's
// (`podman container checkpoint --export`, podman 4.3.1 from bookworm with runc and CRIU: the
// real producer), zstd and plain.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, Containerd } from '../helpers/containerd';
import { runFerry } from '../helpers/ferry-cli';
import { expectExit, uniqueId } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import { podmanCheckpointExport } from '../helpers/podman';
import { footprint } from '../helpers/restore-footprint';

jest.setTimeout(240000);

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];
const RUNTIMES = ['io.containerd.ferry.v2', 'io.containerd.runc.v2'];

// One shell: a counter in memory (/tmp/count) and a line read from an open file at its offset
// (/tmp/pos), plus changes of every kind to its file systems before the checkpoint.
const WORKER = [
  'seq 1 100000 > /tmp/lines', 'echo hello > /tmp/x', 'rm /etc/group', 'echo shm-content > /dev/shm/hello',
  'exec 3</tmp/lines', 'i=0',
  'while read -r l <&3; do i=$((i+1)); echo $l > /tmp/pos; echo $i > /tmp/count; sleep 0.1; done',
].join('; ');
// Prints ticks on stdout, then exits 3.
const TICKER = 'i=0; while [ $i -lt 80 ]; do i=$((i+1)); echo tick $i; sleep 0.1; done; echo done >&2; exit 3';

async function exec(c: Containerd, id: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  return c.ctr(['task', 'exec', '--exec-id', uniqueId('x'), id, ...args]);
}

async function readNumber(c: Containerd, id: string, file: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await exec(c, id, ['cat', file]);
    expectExit(c, r as never, 0);
    const n = Number.parseInt(r.stdout.trim(), 10);
    if (Number.isInteger(n)) return n;
    if (attempt >= 10) throw new Error(`bad number in ${file}: ${JSON.stringify(r.stdout)}`);
  }
}

/** `ferry rm`: the container, its snapshot and the host state ferry made for it. */
/** /tmp/pos and /tmp/count read in one exec (the loop writes both every 0.1 s). */
async function posAndCount(c: Containerd, id: string): Promise<[number, number]> {
  for (let attempt = 0; ; attempt++) {
    const r = await exec(c, id, ['sh', '-c', 'cat /tmp/pos; cat /tmp/count']);
    const [pos, count] = r.stdout.trim().split('\n').map((l) => Number.parseInt(l, 10));
    if (r.code === 0 && Number.isInteger(pos) && Number.isInteger(count)) return [pos!, count!];
    if (attempt >= 10) throw new Error(`bad /tmp/pos, /tmp/count: ${JSON.stringify(r.stdout)}`);
  }
}

async function removeContainer(c: Containerd, id: string, env: Record<string, string>): Promise<void> {
  const r = await runFerry(c, ['rm', id], { env });
  if (r.code !== 0) throw new Error(`ferry rm ${id}: ${r.stderr}`);
}

describe.each(versions)('ferry restore of Podman archives on containerd %s', (version) => {
  let c: Containerd;
  let work: string;
  let stateDir: string;
  let worker: string;
  let ticker: string;
  let workerName: string;
  const env = () => ({ FERRY_STATE_DIR: stateDir });
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-restore-'));
    stateDir = path.join(work, 'state');
    c = await startContainerd({ version });
    worker = path.join(work, 'worker.tar.zst');
    ticker = path.join(work, 'ticker.tar');
    workerName = uniqueId('ferry-pmw');
    await podmanCheckpointExport(workerName, WORKER, worker, { settleMs: 3000 });
    await podmanCheckpointExport(uniqueId('ferry-pmt'), TICKER, ticker, { compress: 'none', settleMs: 2500 });
  }, 180000);
  afterAll(async () => {
    await c?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }, 120000);

  test.each(RUNTIMES)('zstd archive into %s: memory, open file offset, rootfs changes and /dev/shm come back', async (runtime) => {
    const id = uniqueId('pmr');
    const r = await runFerry(c, ['--json', 'restore', '--import', worker, '--name', id, '--runtime', runtime], { env: env() });
    if (r.code !== 0) throw new Error(`restore failed: ${r.stderr}\n${c.logTail(30)}`);
    try {
      const result = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(result).toMatchObject({ id, engine: 'Podman', runtime, checkpointName: workerName, image: c.image!.name, imagePulled: false, rootfs: { deleted: 1 } });
      // ~3 s ran before the checkpoint: a fresh start would show small numbers.
      const [pos, count] = await posAndCount(c, id);
      expect(count).toBeGreaterThanOrEqual(15);
      // The line read is the counter's: the fd's offset in /tmp/lines came back with the process.
      expect(Math.abs(pos - count)).toBeLessThanOrEqual(1);
      const later = await waitFor(async () => { const n = await readNumber(c, id, '/tmp/count'); return n > count + 2 ? n : undefined; }, 20000, 200);
      expect(later).toBeDefined();
      const [pos2, count2] = await posAndCount(c, id);
      expect(Math.abs(pos2 - count2)).toBeLessThanOrEqual(1);
      expect((await exec(c, id, ['cat', '/tmp/x'])).stdout).toBe('hello\n');
      expect((await exec(c, id, ['test', '-e', '/etc/group'])).code).toBe(1);
      expect((await exec(c, id, ['cat', '/dev/shm/hello'])).stdout).toBe('shm-content\n');
    } finally {
      await removeContainer(c, id, env());
    }
  });

  test('without --name the container gets the checkpoint\'s name; a second restore of it is refused', async () => {
    const r = await runFerry(c, ['restore', '--import', worker], { env: env() });
    if (r.code !== 0) throw new Error(`restore failed: ${r.stderr}\n${c.logTail(30)}`);
    try {
      expect(r.stdout).toMatch(new RegExp(`^restored ${workerName} \\(Podman checkpoint of ${workerName}, image ${c.image!.name}\\) into io.containerd.ferry.v2, pid \\d+\\n$`));
      expect(r.stderr).toMatch(/warning: the restored container gets a new network namespace/);
      const again = await runFerry(c, ['restore', '--import', worker], { env: env() });
      expect(again.code).toBe(1);
      expect(again.stderr.trim()).toBe(`ferry restore: a container named ${workerName} already exists (the checkpoint's name; choose another with --name)`);
    } finally {
      await removeContainer(c, workerName, env());
    }
  });

  test('Podman\'s volumes/ are not restored: a warning says so', async () => {
    const id = uniqueId('vol');
    const dir = path.join(work, 'vol.d');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-C', dir, '-xf', ticker]);
    fs.mkdirSync(path.join(dir, 'volumes'));
    fs.writeFileSync(path.join(dir, 'volumes', 'data.tar'), '');
    const file = path.join(work, 'vol.tar');
    execFileSync('tar', ['-C', dir, '-cf', file, '.']);
    const r = await runFerry(c, ['restore', '--import', file, '--name', id], { env: env() });
    try {
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^ferry restore: warning: the checkpoint holds Podman's named volumes \(volumes\/\); ferry does not restore volumes$/m);
    } finally {
      await removeContainer(c, id, env());
    }
  });

  test.each(RUNTIMES)('ferry run --checkpoint --rm (plain archive, %s) stays attached, continues the output, exits with its status, removes the container', async (runtime) => {
    const id = uniqueId('run');
    const before = await footprint(c, stateDir);
    const r = await runFerry(c, ['run', '--rm', '--runtime', runtime, '--checkpoint', ticker, id], { env: env() });
    expect({ code: r.code, stderr: r.stderr.split('\n').filter((l) => !/warning/.test(l)).join('\n') }).toEqual({ code: 3, stderr: 'done\n' });
    const ticks = r.stdout.trim().split('\n');
    // Continued where the checkpoint was taken (~2.5 s in: tick ~20), to the end.
    expect(ticks[ticks.length - 1]).toBe('tick 80');
    const first = Number(/^tick (\d+)$/.exec(ticks[0]!)![1]);
    expect(first).toBeGreaterThan(5);
    expect(ticks).toEqual(Array.from({ length: 80 - first + 1 }, (_, i) => `tick ${first + i}`));
    expect(await footprint(c, stateDir)).toEqual(before);
  });

  test('ferry run --checkpoint -d leaves it running; -d with --rm is refused', async () => {
    const id = uniqueId('rund');
    const r = await runFerry(c, ['run', '-d', '--checkpoint', worker, id], { env: env() });
    if (r.code !== 0) throw new Error(`run -d failed: ${r.stderr}`);
    try {
      expect(r.stdout).toBe(`${id}\n`);
      expect(await readNumber(c, id, '/tmp/count')).toBeGreaterThanOrEqual(15);
    } finally {
      await removeContainer(c, id, env());
    }
    const both = await runFerry(c, ['run', '-d', '--rm', '--checkpoint', worker, id], { env: env() });
    expect(both.code).toBe(1);
    expect(both.stderr.trim()).toBe('ferry run: --detach and --rm cannot be given together');
  });
});
