// Issue 3, point 9: `ctr run --log-uri file://…` and `binary://…` behave as with
// containerd-shim-runc-v2 (pkg/process/io.go): file: stdout+stderr appended to the file, parent
// directories created; binary: the logger gets stdout on fd 3, stderr on fd 4, signals readiness
// on fd 5, sees only CONTAINER_ID/CONTAINER_NAMESPACE in its environment, and gets SIGTERM when
// the task is deleted. Issue 7/11: a file:// container can be checkpointed (its stdout and
// stderr are pipes the shim copies, as the Go shim's) and restored with a file:// stdout, which
// goes on appending to the same file. Run with FERRY_E2E_RUNTIMES=io.containerd.runc.v2 to check
// the Go shim.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/containerd';
import { TasksClient } from '../helpers/containerd-api';
import { criuTarOf, ctrOk, rootfsMounts } from '../helpers/checkpoint-content';
import { ctrRun, ctrRunDetached, expectExit, lanes, taskRow, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';

jest.setTimeout(120000);

const LOGGER = path.join(REPO_ROOT, 'test/fixtures/test-logger.sh');

describe.each(lanes())('log URIs [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-loguri-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test(`file:// appends stdout and stderr to the file, creating its directories [${lane.name}]`, async () => {
    const c = containerd();
    const file = path.join(tmp, 'deep', 'er', 'out.log');
    const uri = `file://${file}`;
    const r1 = await ctrRun(c, lane, uniqueId('file1'), ['sh', '-c', 'echo out-1; echo err-1 >&2; exit 3'], { runFlags: ['--log-uri', uri] });
    expectExit(c, r1, 3);
    expect(r1.stdout).toBe('');
    expect(fs.readFileSync(file, 'utf8').split('\n').sort()).toEqual(['', 'err-1', 'out-1']);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o755);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);

    // A second container appends; nothing written before is lost. As with the Go shim, stdout
    // and stderr are two pipes copied into the file by two copies: each stream keeps its order
    // and a small write arrives whole, but stderr's line may land inside a stdout line (the
    // file is not one atomic append per write). Without stderr's line, stdout is all there.
    const first = fs.readFileSync(file, 'utf8');
    const r2 = await ctrRun(c, lane, uniqueId('file2'), ['sh', '-c', 'seq 1 20000; echo err-2 >&2'], { runFlags: ['--log-uri', uri] });
    expectExit(c, r2, 0);
    const all = fs.readFileSync(file, 'utf8');
    expect(all.startsWith(first)).toBe(true);
    const second = all.slice(first.length);
    expect(second.split('err-2\n')).toHaveLength(2);
    expect(second.replace('err-2\n', '')).toBe(Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join(''));
  });

  test(`a file:// container is checkpointed and restored with a file:// stdout; the file keeps the lines of both [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('filecr');
    const ref = `ckpt/${id}:v1`;
    const file = path.join(tmp, 'cr', `${id}.log`);
    const uri = `file://${file}`;
    const counter = 'i=0; while :; do i=$((i+1)); echo out $i; echo err $i >&2; sleep 0.1; done';
    /** The counter values of one stream, in file order, from byte `from` on. */
    const values = (stream: string, from = 0) => fs.readFileSync(file).subarray(from).toString('utf8').split('\n')
      .filter((l) => l.startsWith(`${stream} `)).map((l) => Number(l.slice(stream.length + 1)));
    const api = new TasksClient(c.address, c.namespace);
    try {
      expectExit(c, await ctrRunDetached(c, lane, id, ['sh', '-c', counter], ['--log-uri', uri]), 0);
      await waitForStatus(c, id, 'RUNNING');
      await waitFor(() => (fs.existsSync(file) && values('err').length >= 10 ? true : undefined), 20000, 100);
      // The dump would fail if fds 1 and 2 were the host file ("Can't lookup mount=… for fd=1").
      // The checkpointed counter lies between what the file held before and after it.
      const startedAt = { out: values('out').length, err: values('err').length };
      await ctrOk(c, ['container', 'checkpoint', '--task', '--image', id, ref]);
      const doneAt = { out: values('out').length, err: values('err').length };
      const tar = await criuTarOf(c, ref);
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitForStatus(c, id, 'STOPPED');
      await ctrOk(c, ['task', 'rm', id]);
      // Deleting the task waited for the copies: the file ends with whole lines.
      const before = fs.readFileSync(file);
      expect(before.subarray(-1).toString()).toBe('\n');
      const beforeOut = values('out');
      expect(beforeOut).toEqual(Array.from({ length: beforeOut.length }, (_, i) => i + 1));
      expect(values('err')).toEqual(Array.from({ length: values('err').length }, (_, i) => i + 1));

      // Restore into the same container (its snapshot is the rootfs), logging to the same file.
      await api.create({ containerId: id, rootfs: await rootfsMounts(c, id), checkpoint: { ...tar, annotations: {} }, stdout: uri, stderr: uri });
      await api.start(id);
      await waitForStatus(c, id, 'RUNNING');
      await waitFor(() => (values('err', before.length).length >= 5 && values('out', before.length).length >= 5 ? true : undefined), 20000, 100);
      // Nothing written before the restore was lost or overwritten.
      expect(fs.readFileSync(file).subarray(0, before.length).equals(before)).toBe(true);
      // Both streams go on from where the checkpoint was taken, not from 1 (a fresh start).
      for (const stream of ['out', 'err'] as const) {
        const after = values(stream, before.length);
        expect(after[0]).toBeGreaterThanOrEqual(startedAt[stream]);
        expect(after[0]).toBeLessThanOrEqual(doneAt[stream] + 1);
        expect(after).toEqual(Array.from({ length: after.length }, (_, i) => after[0]! + i));
      }
      // The restored task's stdout and stderr are the new task's pipes: it can be dumped again.
      // (containerd 1.7 writes a broken second checkpoint while the first is stored: NOTES.md.)
      await ctrOk(c, ['image', 'rm', '--sync', ref]);
      await ctrOk(c, ['container', 'checkpoint', '--task', '--image', id, ref]);
    } finally {
      api.close();
      if (await taskRow(c, id)) {
        await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitForStatus(c, id, 'STOPPED').catch(() => undefined);
        await c.ctr(['task', 'rm', '-f', id]);
      }
      await c.ctr(['container', 'rm', id]);
      await c.ctr(['image', 'rm', '--sync', ref]);
    }
  });

  test(`binary:// gives the logger stdout on fd 3, stderr on fd 4, its args, env, and SIGTERM at delete [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('binary');
    const dir = path.join(tmp, id);
    const uri = `binary://${LOGGER}?dir=${encodeURIComponent(dir)}`;
    const r = await ctrRun(c, lane, id, ['sh', '-c', 'echo to-stdout; echo to-stderr >&2; exit 4'], { runFlags: ['--log-uri', uri] });
    expectExit(c, r, 4);
    expect(r.stdout).toBe('');
    const read = (name: string) => fs.readFileSync(path.join(dir, name), 'utf8');
    expect(read('stdout')).toBe('to-stdout\n');
    expect(read('stderr')).toBe('to-stderr\n');
    expect(read('args')).toBe(`dir\n${dir}\n`);
    const env = read('env').split('\n').filter(Boolean).filter((l) => !l.startsWith('PWD='));
    expect(env.sort()).toEqual([`CONTAINER_ID=${id}`, `CONTAINER_NAMESPACE=${c.namespace}`]);
    // fd 3 and 4 are pipes, fd 5 was the readiness pipe.
    const fds = read('fds');
    expect(fds).toMatch(/ 3 -> pipe:/);
    expect(fds).toMatch(/ 4 -> pipe:/);
    expect(fds).toMatch(/ 5 -> pipe:/);
    // The task's delete stopped the logger with SIGTERM (ctr run --rm returned after it).
    await waitFor(() => fs.existsSync(path.join(dir, 'signals')), 15000);
    expect(read('signals')).toBe('term\n');
  });

  test(`an unknown log URI scheme fails the task [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('badscheme'), ['true'], { runFlags: ['--log-uri', 'nope:///x'] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown STDIO scheme nope/);
  });
});
