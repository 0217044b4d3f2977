// Checkpoints that travel between containerds, on 1.7 and 2.1:
//  - `ferry checkpoint --export` then `ferry restore --import` (ferry's own archive), into
//    ferry's shim and into the Go shim, with CRIU's restore statistics;
//  - between hosts (issue 7 item 8): `ferry checkpoint --create-image REG/NAME:TAG --push` on
//    one containerd, `ferry restore --image REG/NAME:TAG` on a second containerd with its own
//    root and state that has neither the checkpoint image nor its base image: both are pulled
//    through containerd from Debian's docker-registry on loopback (TLS, our CA in containerd's
//    SSL_CERT_FILE), and the counter continues; a second restore does not pull the base again;
//  - `ferry migrate ID --to ADDRESS`: the counter continues on the destination and the source is
//    gone; when the restore on the destination fails, the source runs again and the error says so;
//  - what CRIU keeps only when asked: an ESTABLISHED loopback TCP connection (both ends in the
//    container) through `checkpoint --tcp-established` and `restore --tcp-established`, refused on
//    restore without the flag; a flock(2) lock through `checkpoint --file-locks` and
//    `restore --file-locks`, which CRIU silently drops on a restore without it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startContainerd, Containerd } from '../helpers/containerd';
import { FERRY_CLI, runFerry } from '../helpers/ferry-cli';
import { expectExit, taskRow, uniqueId } from '../helpers/lanes';
import { fdsUnder, listProcs, waitFor } from '../helpers/procfs';
import { startRegistry, type Registry } from '../helpers/registry';

jest.setTimeout(240000);

// eslint-disable-next-line @typescript-eslint/no-var-requires
const pty = require('node-pty') as typeof import('node-pty');

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];
const COUNTER = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];

async function readCount(c: Containerd, id: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('x'), id, 'cat', '/tmp/count']);
    expectExit(c, r, 0);
    const n = Number.parseInt(r.stdout.trim(), 10);
    if (Number.isInteger(n)) return n;
    if (attempt >= 10) throw new Error(`bad count ${JSON.stringify(r.stdout)}`);
  }
}

async function countAtLeast(c: Containerd, id: string, n: number): Promise<number> {
  const v = await waitFor(async () => { const x = await readCount(c, id); return x >= n ? x : undefined; }, 30000, 200);
  if (v === undefined) throw new Error(`counter of ${id} never reached ${n}`);
  return v;
}

/** The restored counter starts at least where it was and keeps counting. */
async function continuesFrom(c: Containerd, id: string, before: number): Promise<void> {
  const first = await readCount(c, id);
  expect(first).toBeGreaterThanOrEqual(before);
  await countAtLeast(c, id, first + 3);
}

describe.each(versions)('checkpoints between containerds %s', (version) => {
  let reg: Registry;
  let a: Containerd;
  let b: Containerd;
  let baseRef: string;
  let work: string;
  const env = () => ({ FERRY_STATE_DIR: path.join(work, 'state'), TMPDIR: work });

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-migrate-'));
    reg = await startRegistry();
    a = await startContainerd({ version, env: reg.containerdEnv() });
    // The other host: own root and state, no images at all.
    b = await startContainerd({ version, env: reg.containerdEnv(), importImage: false });
    // The base image comes from the registry, so the other host can pull it too.
    baseRef = `${reg.host}/ferry-busybox:latest`;
    expectExit(a, await a.ctr(['image', 'tag', a.image!.name, baseRef]), 0);
    expectExit(a, await a.ctr(['image', 'push', baseRef], { timeoutMs: 60000 }), 0);
  }, 180000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await reg?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }, 120000);

  async function startCounter(c: Containerd, runtime: string, id: string): Promise<number> {
    expectExit(c, await c.ctr(['run', '-d', '--runtime', runtime, baseRef, id, ...COUNTER]), 0);
    return countAtLeast(c, id, 20);
  }

  test.each(['io.containerd.ferry.v2', 'io.containerd.runc.v2'])('ferry checkpoint --export, then ferry restore --import --print-stats into %s', async (runtime) => {
    const id = uniqueId('rt');
    const file = path.join(work, `${id}.tar.zst`);
    const atCheckpoint = await startCounter(a, runtime, id);
    const cp = await runFerry(a, ['checkpoint', id, '--export', file], { env: env() });
    if (cp.code !== 0) throw new Error(`checkpoint: ${cp.stderr}`);
    expectExit(a, await a.ctr(['container', 'rm', id]), 0);
    const r = await runFerry(a, ['--json', 'restore', '--import', file, '--runtime', runtime, '--print-stats'], { env: env() });
    if (r.code !== 0) throw new Error(`restore: ${r.stderr}\n${a.logTail(20)}`);
    try {
      const result = JSON.parse(r.stdout) as { id: string; engine: string; stats?: Record<string, number> };
      // Without --name: the checkpoint's name, which ferry's archive gives as the container id.
      expect(result).toMatchObject({ id, engine: 'containerd', imagePulled: false });
      expect(result.stats).toBeDefined();
      expect(result.stats!.pagesRestored + result.stats!.pagesSkippedCow + result.stats!.pagesCompared).toBeGreaterThan(0);
      expect(result.stats!.restoreTime).toBeGreaterThan(0);
      await continuesFrom(a, id, atCheckpoint);
    } finally {
      await runFerry(a, ['rm', id], { env: env() });
    }
  });

  test('--create-image --push on one containerd, restore --image on another that pulls the checkpoint and its base image', async () => {
    const id = uniqueId('reg');
    const ref = `${reg.host}/ferry-ckpt/${id}:v1`;
    const before = await startCounter(a, 'io.containerd.ferry.v2', id);
    const cp = await runFerry(a, ['checkpoint', id, '--create-image', ref, '--push'], { env: env() });
    if (cp.code !== 0) throw new Error(`checkpoint: ${cp.stderr}`);
    expect((await b.ctr(['image', 'ls', '-q'])).stdout).toBe('');
    const r = await runFerry(b, ['--json', 'restore', '--image', ref], { env: env() });
    if (r.code !== 0) throw new Error(`restore --image: ${r.stderr}\n${b.logTail(20)}`);
    try {
      expect(JSON.parse(r.stdout)).toMatchObject({ id, checkpointImage: ref, image: expect.stringContaining('ferry-busybox'), imagePulled: true });
      await continuesFrom(b, id, before);
      const images = (await b.ctr(['image', 'ls', '-q'])).stdout;
      expect(images).toContain(ref);
    } finally {
      await runFerry(b, ['rm', id], { env: env() });
    }
    // Again, now that both images are local: nothing is pulled.
    const again = await runFerry(b, ['--json', 'restore', '--image', ref, '--name', `${id}-2`], { env: env() });
    if (again.code !== 0) throw new Error(`second restore: ${again.stderr}`);
    expect(JSON.parse(again.stdout)).toMatchObject({ id: `${id}-2`, imagePulled: false });
    await runFerry(b, ['rm', `${id}-2`], { env: env() });
    await a.ctr(['container', 'rm', id]);
  });

  /** iptables rules that name `port`: CRIU locks a connection of the host's network namespace with them while it dumps. */
  const rulesFor = (port: number) => execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l.includes(String(port)));

  // ferry's shim on both versions, the Go shim on 2.1 only (time): the flag reaches runc through the spec either way.
  const tcpRuntimes = version === '2.1' ? ['io.containerd.ferry.v2', 'io.containerd.runc.v2'] : ['io.containerd.ferry.v2'];
  test.each(tcpRuntimes)('--tcp-established: an ESTABLISHED loopback connection survives export and import into %s; without the flag the restore is refused', async (runtime) => {
    const id = uniqueId('tcpr');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const file = path.join(work, `${id}.tar`);
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    // Host network: a namespace ctr makes has loopback down. The client sends a counter; the
    // listener (which accepts one connection only) writes what it receives to /tmp/got.
    const script = `(while :; do sleep 1; done) | nc -l -p ${port} > /tmp/got & sleep 1; (i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done) | nc 127.0.0.1 ${port} & while :; do sleep 1; done`;
    const received = async (c: Containerd, cid: string): Promise<number[]> => {
      const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('got'), cid, 'cat', '/tmp/got']);
      return r.stdout.split('\n').filter((l) => l !== '').map(Number);
    };
    const receivedMore = async (c: Containerd, cid: string, than: number): Promise<number[]> => {
      const got = await waitFor(async () => { const g = await received(c, cid); return g.length >= than ? g : undefined; }, 30000, 300);
      if (!got) throw new Error(`${cid} received fewer than ${than} lines`);
      return got;
    };
    /** The client's end (127.0.0.1:x → 127.0.0.1:port, state 01) in the container's /proc/net/tcp. */
    const established = async (c: Containerd, cid: string) => (await c.ctr(['task', 'exec', '--exec-id', uniqueId('tcp'), cid, 'cat', '/proc/net/tcp'])).stdout
      .split('\n').filter((l) => new RegExp(`^\\s*\\d+: 0100007F:[0-9A-F]{4} 0100007F:${hex} 01 `).test(l));
    expectExit(a, await a.ctr(['run', '-d', '--net-host', '--runtime', runtime, baseRef, id, 'sh', '-c', script]), 0);
    try {
      await receivedMore(a, id, 5);
      expect(await established(a, id)).toHaveLength(1);
      const cp = await runFerry(a, ['checkpoint', id, '--tcp-established', '--compress', 'none', '--export', file], { env: env() });
      if (cp.code !== 0) throw new Error(`checkpoint: ${cp.stderr}`);
      expectExit(a, await a.ctr(['container', 'rm', id]), 0);
      // CRIU locks the connection with iptables DROP rules while it dumps (dump.log: "Locked
      // 127.0.0.1:P - 127.0.0.1:Q connection") and deletes them when the dump ends: none outlive it.
      expect(rulesFor(port)).toEqual([]);

      // Without --tcp-established CRIU refuses the connection in the images; nothing is left.
      const refused = await runFerry(a, ['restore', '--import', file, '--runtime', runtime], { env: env() });
      expect(refused.code).toBe(1);
      expect(refused.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^ferry restore: .*OCI runtime restore failed: .*inet: Connected TCP socket in image/)]);
      // CRIU's words are quoted: the log they came from went with ferry's staging directory.
      expect(refused.stderr).not.toMatch(/restore\.log|; ;/);
      expect((await a.ctr(['container', 'ls', '-q'])).stdout).not.toContain(id);

      const r = await runFerry(a, ['--json', 'restore', '--import', file, '--runtime', runtime, '--tcp-established'], { env: env() });
      if (r.code !== 0) throw new Error(`restore --tcp-established: ${r.stderr}\n${a.logTail(20)}`);
      try {
        expect(JSON.parse(r.stdout)).toMatchObject({ id, runtime });
        // The same connection: the pair is ESTABLISHED again and the listener, which accepts no
        // second connection, keeps receiving the counter where it left off.
        const at = await received(a, id);
        expect(at.length).toBeGreaterThanOrEqual(5);
        const later = await receivedMore(a, id, at.length + 5);
        expect(later.slice(0, at.length)).toEqual(at);
        expect(later).toEqual(later.map((_, i) => i + 1));
        expect(await established(a, id)).toHaveLength(1);
        expect(rulesFor(port)).toEqual([]);
      } finally {
        await runFerry(a, ['rm', id], { env: env() });
      }
    } finally {
      await a.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await a.ctr(['task', 'rm', '-f', id]);
      await a.ctr(['container', 'rm', id]);
      // Should CRIU ever leave its DROP rules for this port (the assertions above fail then), they go.
      for (const rule of rulesFor(port)) execFileSync('iptables', rule.replace(/^-A /, '-D ').split(' '));
    }
  });

  test('--file-locks: a flock(2) lock is held again after restore --file-locks; CRIU drops it on a restore without the flag', async () => {
    const id = uniqueId('lock');
    const file = path.join(work, `${id}.tar`);
    // busybox-static has no flock applet: a static helper built here from test/fixtures/hold-lock.c
    // is copied into the container's writable layer (so the checkpoint carries it), then run by init.
    const helper = path.join(work, 'hold-lock');
    execFileSync('gcc', ['-static', '-O2', '-o', helper, path.resolve(__dirname, '../fixtures/hold-lock.c')]);
    const script = 'until [ -f /tmp/copied ]; do sleep 0.1; done; /tmp/hold-lock hold /tmp/lock /tmp/held & while :; do sleep 1; done';
    /** Whether another process could take the lock now. */
    const lockFree = async (c: Containerd, cid: string): Promise<boolean> => {
      const r = await c.ctr(['task', 'exec', '--exec-id', uniqueId('fl'), cid, '/tmp/hold-lock', 'try', '/tmp/lock']);
      if (r.code !== 0 && r.code !== 1) throw new Error(`hold-lock try exited ${r.code}: ${r.stderr}`);
      return r.code === 0;
    };
    expectExit(a, await a.ctr(['run', '-d', baseRef, id, 'sh', '-c', script]), 0);
    try {
      expectExit(a, await a.ctr(['task', 'exec', '--exec-id', uniqueId('cp'), id, 'sh', '-c', 'cat > /tmp/hold-lock && chmod 755 /tmp/hold-lock && touch /tmp/copied'], { input: fs.readFileSync(helper) }), 0);
      const held = await waitFor(async () => ((await a.ctr(['task', 'exec', '--exec-id', uniqueId('h'), id, 'cat', '/tmp/held'])).stdout.includes('held') || undefined), 20000, 200);
      expect(held).toBe(true);
      expect(await lockFree(a, id)).toBe(false);
      // CRIU refuses to dump a held lock unless asked; the container runs on.
      const refused = await runFerry(a, ['checkpoint', id, '--export', file], { env: env() });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/file locks are hold by dumping tasks/);
      expect(fs.existsSync(file)).toBe(false);
      expect((await taskRow(a, id))?.status).toBe('RUNNING');
      expect(await lockFree(a, id)).toBe(false);
      const cp = await runFerry(a, ['checkpoint', id, '--file-locks', '--compress', 'none', '--export', file], { env: env() });
      if (cp.code !== 0) throw new Error(`checkpoint --file-locks: ${cp.stderr}`);
      expectExit(a, await a.ctr(['container', 'rm', id]), 0);
      expect(execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n')).toContain('checkpoint/filelocks.img');

      // Without --file-locks on restore (CRIU's own default): the processes come back, the lock does not.
      const loose = `${id}-nolock`;
      const r0 = await runFerry(a, ['restore', '--import', file, '--name', loose], { env: env() });
      if (r0.code !== 0) throw new Error(`restore without --file-locks: ${r0.stderr}`);
      try {
        expect(await lockFree(a, loose)).toBe(true);
      } finally {
        await runFerry(a, ['rm', loose], { env: env() });
      }

      const r = await runFerry(a, ['restore', '--import', file, '--file-locks'], { env: env() });
      if (r.code !== 0) throw new Error(`restore --file-locks: ${r.stderr}\n${a.logTail(20)}`);
      try {
        expect(await lockFree(a, id)).toBe(false);
        // The holder is the restored helper: its lock is in the container's /proc/locks.
        const ps = (await a.ctr(['task', 'exec', '--exec-id', uniqueId('ps'), id, 'ps', '-o', 'pid,args'])).stdout;
        const pid = /^\s*(\d+) \/tmp\/hold-lock hold/m.exec(ps)?.[1];
        expect(pid).toBeDefined();
        const locks = (await a.ctr(['task', 'exec', '--exec-id', uniqueId('pl'), id, 'cat', '/proc/locks'])).stdout;
        expect(locks).toMatch(new RegExp(`FLOCK\\s+ADVISORY\\s+WRITE\\s+${pid} `));
      } finally {
        await runFerry(a, ['rm', id], { env: env() });
      }
    } finally {
      await a.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await a.ctr(['task', 'rm', '-f', id]);
      await a.ctr(['container', 'rm', id]);
    }
  });

  test('ferry migrate: the counter continues on the destination, and only then the source is removed', async () => {
    const id = uniqueId('mig');
    await startCounter(a, 'io.containerd.ferry.v2', id);
    const r = await runFerry(a, ['--json', 'migrate', id, '--to', b.address, '--to-namespace', b.namespace], { env: env() });
    if (r.code !== 0) throw new Error(`migrate: ${r.stderr}\n${b.logTail(20)}`);
    try {
      expect(JSON.parse(r.stdout)).toMatchObject({ id, to: b.address, namespace: b.namespace, sourceRemoved: true, restored: { id } });
      const moved = await readCount(b, id);
      expect(moved).toBeGreaterThanOrEqual(20);
      await countAtLeast(b, id, moved + 3);
      expect((await a.ctr(['container', 'ls', '-q'])).stdout).not.toContain(id);
      expect(await taskRow(a, id)).toBeUndefined();
      expect(fs.readdirSync(path.join(work, 'state', 'migrate'))).toEqual([]);
    } finally {
      await runFerry(b, ['rm', id], { env: env() });
    }
  });

  test('a container ferry restored can be checkpointed again: its output is in its log, and it migrates on', async () => {
    const id = uniqueId('gen');
    const file = path.join(work, `${id}.tar.zst`);
    expectExit(a, await a.ctr(['run', '-d', baseRef, id, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo line $i; sleep 0.1; done']), 0);
    await countAtLeast(a, id, 10);
    const cp = await runFerry(a, ['checkpoint', id, '--export', file], { env: env() });
    if (cp.code !== 0) throw new Error(`checkpoint: ${cp.stderr}`);
    expectExit(a, await a.ctr(['container', 'rm', id]), 0);
    const r = await runFerry(a, ['--json', 'restore', '--import', file], { env: env() });
    if (r.code !== 0) throw new Error(`restore: ${r.stderr}`);
    const { log } = JSON.parse(r.stdout) as { log: string };
    // The copiers: a `cat` for stdout and one for stderr, holding the FIFOs' read ends, run from /
    // (they live as long as the container); `ferry restore` itself has exited.
    const stdioDir = `${path.join(path.dirname(log), 'stdio')}/`;
    const cats = listProcs().filter((p) => path.basename(p.argv[0] ?? '') === 'cat' && fdsUnder(p.pid, stdioDir));
    expect(cats.map((p) => fs.readlinkSync(`/proc/${p.pid}/cwd`))).toEqual(['/', '/']);
    const restoredAt = await readCount(a, id);
    await countAtLeast(a, id, restoredAt + 5);
    // The restored process writes to its pipes; ferry's copier puts that in container.log.
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    // It continues from the checkpoint (≥ 10 counted before it), not from 1, line after line.
    const first = Number(/^line (\d+)$/.exec(lines[0]!)![1]);
    expect(first).toBeGreaterThanOrEqual(10);
    expect(first).toBeLessThanOrEqual(restoredAt + 1);
    expect(lines.slice(0, 3)).toEqual([`line ${first}`, `line ${first + 1}`, `line ${first + 2}`]);
    const m = await runFerry(a, ['migrate', id, '--to', b.address, '--to-namespace', b.namespace, '--name', `${id}-b`], { env: env() });
    if (m.code !== 0) throw new Error(`migrate of a restored container: ${m.stderr}`);
    try {
      const moved = await readCount(b, `${id}-b`);
      expect(moved).toBeGreaterThan(restoredAt);
      await countAtLeast(b, `${id}-b`, moved + 3);
      // The source's copier ended with its task; its state went with ferry's removal of the source.
      expect(fs.existsSync(path.dirname(log))).toBe(false);
      // …and no process holds its FIFOs any more (the copiers exited).
      const copiers = await waitFor(() => (listProcs().some((p) => fdsUnder(p.pid, stdioDir)) ? undefined : true), 10000, 200);
      expect(copiers).toBe(true);
    } finally {
      await runFerry(b, ['rm', `${id}-b`], { env: env() });
    }
  });

  test('ferry migrate whose restore fails: the source runs again and the error says so', async () => {
    const id = uniqueId('migf');
    await startCounter(a, 'io.containerd.ferry.v2', id);
    // The destination cannot restore it: its runtime does not exist there.
    const r = await runFerry(a, ['migrate', id, '--to', b.address, '--to-namespace', b.namespace, '--runtime', 'io.containerd.nosuch.v1'], { env: env() });
    try {
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').filter((l) => !/warning/.test(l))).toEqual([expect.stringMatching(new RegExp(`^ferry migrate: .*; the source container ${id} is running again$`))]);
      const v = await readCount(a, id);
      await countAtLeast(a, id, v + 3);
      expect((await b.ctr(['container', 'ls', '-q'])).stdout).not.toContain(id);
      expect(fs.readdirSync(path.join(work, 'state', 'migrate'))).toEqual([]);
    } finally {
      await a.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => ((await a.ctr(['task', 'rm', id])).code === 0 ? true : undefined), 15000, 200);
      await a.ctr(['container', 'rm', id]);
    }
  });

  test('the import of a large checkpoint shows a progress bar on a terminal, and nothing through a pipe', async () => {
    const id = uniqueId('big');
    // ~64 MiB of random text in the shell's memory.
    expectExit(a, await a.ctr(['run', '-d', baseRef, id, 'sh', '-c', 'x=$(head -c 50331648 /dev/urandom | base64); echo ready > /tmp/ready; while :; do sleep 1; done']), 0);
    await waitFor(async () => ((await a.ctr(['task', 'exec', '--exec-id', uniqueId('r'), id, 'cat', '/tmp/ready'])).stdout.includes('ready') ? true : undefined), 60000, 500);
    const file = path.join(work, `${id}.tar`);
    const cp = await runFerry(a, ['checkpoint', id, '--export', file, '--compress', 'none'], { env: env() });
    if (cp.code !== 0) throw new Error(`checkpoint: ${cp.stderr}`);
    expectExit(a, await a.ctr(['container', 'rm', id]), 0);
    expect(fs.statSync(file).size).toBeGreaterThan(60 * 1024 * 1024);
    const term = pty.spawn(process.execPath, [FERRY_CLI, '-a', a.address, '-n', a.namespace, 'restore', '--import', file], {
      cols: 140, rows: 24, name: 'xterm', env: { ...process.env, ...env(), TERM: 'xterm' } as Record<string, string>,
    });
    let out = '';
    term.onData((d) => { out += d; });
    const exit = await new Promise<{ exitCode: number }>((resolve) => term.onExit(resolve));
    try {
      expect({ exitCode: exit.exitCode }).toEqual({ exitCode: 0 });
      expect(out).toMatch(/import \S+ \[[=-]{24}\] +\d+% [\d.]+ [KMG]?i?B\/[\d.]+ MiB [\d.]+ [KM]iB\/s \S+ left/);
      expect(out).toContain(`restored ${id}`);
    } finally {
      await runFerry(a, ['rm', id], { env: env() });
    }
    const piped = await runFerry(a, ['restore', '--import', file], { env: env() });
    try {
      expect({ code: piped.code, stderr: piped.stderr }).toEqual({ code: 0, stderr: '' });
      expect(piped.stdout).toMatch(new RegExp(`^restored ${id} `));
    } finally {
      await runFerry(a, ['rm', id], { env: env() });
    }
  });
});
