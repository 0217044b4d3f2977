// The shim daemon's learned code cache (src/loader/learned-cache.ts) through a real containerd:
// a daemon's exit writes the methods it served and what it compiled; the next daemon starts
// from it (its "shim started" line in containerd's log says v8_cache=learned); one that serves
// more adds to it; a cache directory others can write is neither read nor written, and the
// containers run all the same.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Containerd } from '../helpers/containerd';
import { ctrRun, ctrRunDetached, expectExit, isGoShim, lanes, shimFootprint, uniqueId, useContainerd } from '../helpers/lanes';
import { isRunning, waitFor } from '../helpers/procfs';
import { readLearnedCache } from '../../src/loader/learned-cache';

jest.setTimeout(120000);

describe.each(lanes().filter((l) => !isGoShim(l) && !l.grpc))('learned code cache [$name]', (lane) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-learned-e2e-'));
  const cacheDir = path.join(base, 'cache');
  const containerd = useContainerd(lane, { env: { FERRY_CODE_CACHE_DIR: cacheDir } });
  let c: Containerd;
  beforeAll(() => { c = containerd(); });
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

  const caches = () => (fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir) : []);
  /** The methods the one learned cache in the directory records. */
  const recorded = () => {
    const [name] = caches();
    const text = fs.readFileSync(path.join(cacheDir, name!), 'latin1');
    const buildId = text.slice(0, text.indexOf('\n')).split(' ')[1]!;
    return readLearnedCache(path.join(cacheDir, name!), buildId)?.methods;
  };
  const startedLine = (pid: number) => waitFor(() => c.log().match(new RegExp(`msg="shim started"[^\\n]* pid=${pid} [^\\n]*v8_cache=(\\w+)`))?.[1], 10000);
  const detached = async (id: string) => {
    expectExit(c, await ctrRunDetached(c, lane, id, ['sleep', '1000']), 0);
    return (await shimFootprint(c, id)).shimPid;
  };
  const removeAndWaitExit = async (id: string, pid: number) => {
    expectExit(c, await c.ctr(['task', 'rm', '-f', id]), 0);
    expectExit(c, await c.ctr(['container', 'rm', id]), 0);
    await waitFor(() => !isRunning(pid), 10000);
  };

  test(`a daemon's exit writes what it served; the next daemon starts from it; one that served more adds to it [${lane.name}]`, async () => {
    const first = await ctrRun(c, lane, uniqueId('learn'), ['echo', 'hi']);
    expectExit(c, first, 0);
    expect(first.stdout).toBe('hi\n');
    await waitFor(() => caches().length === 1, 10000);
    expect(fs.statSync(cacheDir).mode & 0o777).toBe(0o700);
    const once = recorded()!;
    expect(once).toEqual(expect.arrayContaining(['Create', 'Start', 'Delete', 'Shutdown']));
    expect(once).not.toContain('Exec');

    const id = uniqueId('learn-exec');
    const pid = await detached(id);
    expect(await startedLine(pid)).toBe('learned');
    const exec = await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'echo', 'exec']);
    expectExit(c, exec, 0);
    expect(exec.stdout).toBe('exec\n');
    await removeAndWaitExit(id, pid);
    await waitFor(() => recorded()?.includes('Exec'), 10000);
    expect(recorded()).toEqual(expect.arrayContaining([...once, 'Exec', 'Kill']));
    expect(caches()).toHaveLength(1);
  });

  test(`a cache directory others can write is neither read nor written, and containers still run [${lane.name}]`, async () => {
    for (const name of caches()) fs.rmSync(path.join(cacheDir, name));
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.chmodSync(cacheDir, 0o777);
    try {
      const id = uniqueId('learn-unsafe');
      const pid = await detached(id);
      expect(await startedLine(pid)).toBe('used'); // dist/'s cache
      expect(c.log()).toMatch(new RegExp(`learned code cache not used: ${cacheDir}: writable by group or others \\(mode 777\\)[^\\n]* pid=${pid} `));
      await removeAndWaitExit(id, pid);
      expect(caches()).toEqual([]);
    } finally {
      fs.chmodSync(cacheDir, 0o700);
    }
  });
});
