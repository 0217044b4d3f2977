// Issue 11, item 3: the runtime binary (Options.BinaryName) runs as containerd's Go shim runs
// it — in the bundle, with go-runc's argument forms — so a wrapper that reads config.json and
// the pid file from its working directory works; and when it fails, its own words reach the
// user: the last error/fatal/panic line it logged, or its stderr.
import * as path from 'node:path';
import { RuncWrapper } from '../helpers/runc-wrapper';
import { ctrRun, ctrRunDetached, explain, expectExit, isGoShim, lanes, uniqueId, useContainerd, waitForStatus } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';

jest.setTimeout(120000);

describe.each(lanes())('runtime binary [$name]', (lane) => {
  const containerd = useContainerd(lane);
  let wrapper: RuncWrapper;
  beforeEach(() => { wrapper = new RuncWrapper(); });
  afterEach(() => wrapper.remove());

  test(`every runc command runs in the bundle, with go-runc's arguments [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('inbundle');
    const bundle = c.bundleDir(id);
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000'], wrapper.runFlags(lane)), 0);
    const row = await waitForStatus(c, id, 'RUNNING');
    expectExit(c, await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'exit 4']), 4);
    expectExit(c, await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]), 0);
    await waitForStatus(c, id, 'STOPPED');
    expectExit(c, await c.ctr(['task', 'rm', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);

    const calls = wrapper.calls();
    const log = path.join(bundle, 'log.json');
    const global = `--root /run/containerd/runc/${c.namespace} --log ${log} --log-format json`;
    const one = (command: string) => {
      const found = calls.filter((k) => k.command === command);
      expect(found.map((k) => k.command)).toEqual([command]);
      return found[0]!;
    };
    const create = one('create');
    expect(create.args).toBe(`${global} create --bundle ${bundle} --pid-file ${path.join(bundle, 'init.pid')} ${id}`);
    // The wrapper read the pid file runc wrote, from its working directory.
    expect(Number(create.pid)).toBe(row.pid);
    expect(one('start').args).toBe(`${global} start ${id}`);
    expect(one('exec').args).toMatch(new RegExp(`^${escape(global)} exec --process \\S+ --detach --pid-file ${escape(path.join(bundle, 'e1.pid'))} ${escape(id)}$`));
    expect(one('kill').args).toBe(`${global} kill ${id} 9`);
    // Delete, then (after the shim has gone) containerd's `<shim> delete -bundle` cleanup.
    const deletes = calls.filter((k) => k.command === 'delete').map((k) => k.args);
    expect(deletes[0]).toBe(`${global} delete ${id}`);
    for (const d of deletes.slice(1)) expect(d).toBe(`${global} delete --force ${id}`);
    // Each call, whatever the command, ran in the bundle and found config.json there.
    for (const k of calls) expect({ command: k.command, cwd: k.cwd, config: k.config }).toEqual({ command: k.command, cwd: bundle, config: true });
  });

  test(`a fatal line the runtime logs becomes the create error [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('fatal');
    wrapper.set('fatal-create');
    const r = await ctrRun(c, lane, id, ['true'], { runFlags: wrapper.runFlags(lane) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('OCI runtime create failed');
    if (isGoShim(lane)) {
      // The Go shim reads only level "error" lines: it reports runc's exit status instead.
      expect(r.stderr).not.toContain('injected create failure');
    } else {
      expect(r.stderr).toContain('OCI runtime create failed: wrapper: injected create failure (config.json in cwd: yes)');
    }
    expect(wrapper.calls().find((k) => k.command === 'create')).toMatchObject({ cwd: c.bundleDir(id), config: true });
    await c.ctr(['container', 'rm', id]);
  });

  test(`without a logged line, the runtime's stderr is the error [${lane.name}]`, async () => {
    const c = containerd();
    const id = uniqueId('stderr');
    wrapper.set('stderr-start');
    const r = await ctrRunDetached(c, lane, id, ['sleep', '1000'], wrapper.runFlags(lane));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/OCI runtime start failed: .*wrapper: start refused by the test/);
    // The created container is still there to be removed.
    await waitFor(async () => (await c.ctr(['task', 'rm', '-f', id])).code === 0, 15000, 200);
    const rm = await c.ctr(['container', 'rm', id]);
    if (rm.code !== 0) throw new Error(explain(c, rm));
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
