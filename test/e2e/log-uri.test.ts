// Issue 3, point 9: `ctr run --log-uri file://…` and `binary://…` behave as with
// containerd-shim-runc-v2 (pkg/process/io.go): file: stdout+stderr appended to the file, parent
// directories created; binary: the logger gets stdout on fd 3, stderr on fd 4, signals readiness
// on fd 5, sees only CONTAINER_ID/CONTAINER_NAMESPACE in its environment, and gets SIGTERM when
// the task is deleted. Run with FERRY_E2E_RUNTIMES=io.containerd.runc.v2 to check the Go shim.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/containerd';
import { ctrRun, expectExit, lanes, uniqueId, useContainerd } from '../helpers/lanes';
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

    // A second container appends; nothing written before is lost.
    const r2 = await ctrRun(c, lane, uniqueId('file2'), ['sh', '-c', 'seq 1 20000; echo err-2 >&2'], { runFlags: ['--log-uri', uri] });
    expectExit(c, r2, 0);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.filter((l) => /^(out|err)-1$/.test(l)).sort()).toEqual(['err-1', 'out-1']);
    const numbers = lines.filter((l) => /^\d+$/.test(l)).map(Number);
    expect(numbers).toEqual(Array.from({ length: 20000 }, (_, i) => i + 1));
    expect(lines).toContain('err-2');
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
