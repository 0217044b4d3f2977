// Issue 3, point 10: runc's options reach ferry the way users give them. For a runtime not named
// `io.containerd.runc.*`, ctr (and containerd's CRI config) send `runtimeoptions.v1.Options`:
// `ctr run --runtime-config-path FILE` names a TOML file with runc Options' keys. The same
// options then arrive on `start`'s stdin (shim_cgroup) and in Create (everything else).
// `ctr run --no-pivot` sends the older containerd.linux.runc.CreateOptions.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/containerd';
import { ctrRunDetached, expectExit, FERRY_RUNTIME, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';

jest.setTimeout(120000);

describe.each(lanes().filter((l) => l.runtime === FERRY_RUNTIME))('runtime options [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ropts-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test(`--runtime-config-path: BinaryName, Root, NoPivotRoot, IoUid/IoGid and ShimCgroup are honoured [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('ropts');
    const dir = path.join(tmp, id);
    fs.mkdirSync(dir);
    const wrapper = path.join(dir, 'runc');
    fs.copyFileSync(path.join(REPO_ROOT, 'test/fixtures/runc-recorder.sh'), wrapper);
    fs.chmodSync(wrapper, 0o755);
    const root = path.join(dir, 'runc-root');
    const shimCgroup = `ferry-shim-${id}`;
    const cgroupDir = path.join('/sys/fs/cgroup/pids', shimCgroup);
    fs.mkdirSync(cgroupDir);
    const config = path.join(dir, 'ferry.toml');
    fs.writeFileSync(config, [
      '# runc options for ferry',
      `BinaryName = ${JSON.stringify(wrapper)}`,
      `Root = ${JSON.stringify(root)}`,
      'NoPivotRoot = true',
      'IoUid = 1234',
      'IoGid = 5678',
      `ShimCgroup = ${JSON.stringify(`/${shimCgroup}`)}`,
      '',
    ].join('\n'));
    try {
      expectExit(c, await ctrRunDetached(c, lane, id, ['sh', '-c', 'echo hi; sleep 1000'], ['--runtime-config-path', config]), 0);
      const row = await waitForStatus(c, id, 'RUNNING');
      const calls = fs.readFileSync(path.join(dir, 'calls'), 'utf8');
      const create = calls.split('\n').find((l) => / create /.test(` ${l} `));
      expect(create).toBeDefined();
      expect(create).toContain(`--root ${path.join(root, c.namespace)}`);
      expect(create).toContain('--no-pivot');
      expect(calls).toMatch(/(^|\n)--root \S+ .*\bstart\b/);
      expect(fs.existsSync(path.join(root, c.namespace, id, 'state.json'))).toBe(true);
      // The shim created the container's pipes owned by IoUid:IoGid; runc then gives stdio to the
      // container's user (fixStdioPermissions: fchown(fd, process uid, current gid)), so the
      // container (root here, no user namespace) sees uid 0 and keeps IoGid.
      for (const fd of [1, 2]) {
        const st = fs.statSync(`/proc/${row.pid}/fd/${fd}`);
        expect([st.uid, st.gid]).toEqual([0, 5678]);
        expect(st.isFIFO()).toBe(true);
      }
      // start moved the daemon into ShimCgroup.
      const shim = c.shimDaemons(id)[0];
      expect(shim).toBeDefined();
      expect(fs.readFileSync(`/proc/${shim!.pid}/cgroup`, 'utf8')).toMatch(new RegExp(`:pids:/${shimCgroup}\\n`));

      expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
      await waitForStatus(c, id, 'STOPPED');
      expectExit(c, await c.ctr(['task', 'rm', id]), 0);
      expect(fs.readFileSync(path.join(dir, 'calls'), 'utf8')).toMatch(/\bdelete\b/);
      expect(fs.existsSync(path.join(root, c.namespace, id))).toBe(false);
      expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    } finally {
      await waitFor(() => { try { fs.rmdirSync(cgroupDir); return true; } catch { return false; } }, 10000);
    }
  });

  test(`ctr run --no-pivot (containerd.linux.runc.CreateOptions) passes --no-pivot to runc [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('nopivot');
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000'], ['--no-pivot']), 0);
    await waitForStatus(c, id, 'RUNNING');
    const state = JSON.parse(fs.readFileSync(path.join('/run/containerd/runc', c.namespace, id, 'state.json'), 'utf8')) as { config?: { no_pivot_root?: boolean } };
    expect(state.config?.no_pivot_root).toBe(true);
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
  });

  test(`a runtime config with a wrongly typed value fails the task with a clear error [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('badopts');
    const config = path.join(tmp, `${id}.toml`);
    fs.writeFileSync(config, 'NoPivotRoot = "yes"\n');
    const r = await ctrRunDetached(c, lane, id, ['true'], ['--runtime-config-path', config]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/NoPivotRoot: expected a boolean/);
    await c.ctr(['container', 'rm', id]);
  });
});
