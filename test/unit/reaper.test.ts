// The reaper runs in a separate node process (it makes that process a child subreaper), built
// with esbuild the way the shim is. It must reap re-parented orphans with their exact status,
// keep an exit that arrives before anyone claims the pid, and never steal child_process's
// children (their 'exit' events must all fire, with their own codes).
import { execFileSync } from 'child_process';
import { buildSync } from 'esbuild';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '../..');

function runBundled(name: string, source: string, timeout = 60000): string {
  const outfile = path.join(root, 'build', 'test-scripts', `${name}-${process.pid}.js`);
  buildSync({
    stdin: { contents: source, resolveDir: path.join(root, 'src', 'process'), loader: 'ts', sourcefile: `${name}-script.ts` },
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile, logLevel: 'error',
  });
  try {
    return execFileSync(process.execPath, [outfile], { encoding: 'utf8', timeout });
  } finally {
    fs.rmSync(outfile, { force: true });
  }
}

test('reaps orphans exactly, keeps early exits, never steals child_process children', () => {
  const out = runBundled('reaper', `
    import { spawn, execFileSync } from 'child_process';
    import { Reaper } from './reaper';
    import { setChildSubreaper } from '../sys/native';
    setChildSubreaper();
    const r = new Reaper();
    r.start();
    const result: any = { libuv: [], orphans: {}, early: null };
    const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
    (async () => {
      // 60 ordinary children through child_process, each with its own exit code.
      const libuv = Array.from({ length: 60 }, (_, i) => new Promise<number>((res) => {
        const c = spawn('/bin/sh', ['-c', 'sleep 0.$((RANDOM % 3)); exit ' + (i % 50)]);
        r.trackLibuvChild(c);
        c.on('exit', (code) => res(code ?? -1));
      }));
      // 20 orphans: the intermediate shell exits at once, the orphan is re-parented to us.
      const orphanPids: number[] = [];
      for (let i = 0; i < 20; i++) {
        const pid = Number(execFileSync('/bin/sh', ['-c', '(sleep 0.3; exit ' + (i + 1) + ') >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim());
        orphanPids.push(pid);
        r.claim(pid, new Date(0), (e) => { result.orphans[pid] = e.status; });
      }
      // An orphan killed by a signal: 128 + 9.
      const killed = Number(execFileSync('/bin/sh', ['-c', 'sleep 30 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim());
      r.claim(killed, new Date(0), (e) => { result.killed = e.status; });
      process.kill(killed, 'SIGKILL');
      // An orphan that exits before its pid is claimed.
      const early = Number(execFileSync('/bin/sh', ['-c', '(sleep 0.05; exit 42) >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim());
      await sleep(300);
      const since = new Date(Date.now() - 5000);
      await new Promise<void>((res) => r.claim(early, since, (e) => { result.early = e.status; res(); }));
      result.libuv = await Promise.all(libuv);
      for (let i = 0; i < 100 && Object.keys(result.orphans).length < 20; i++) await sleep(50);
      result.orphanPids = orphanPids;
      r.stop();
      process.stdout.write(JSON.stringify(result));
    })();
  `);
  const result = JSON.parse(out) as { libuv: number[]; orphans: Record<string, number>; orphanPids: number[]; killed: number; early: number };
  expect(result.libuv).toEqual(Array.from({ length: 60 }, (_, i) => i % 50));
  expect(result.orphanPids.map((p) => result.orphans[p])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  expect(result.killed).toBe(137);
  expect(result.early).toBe(42);
});

test('a stale exit of a recycled pid is not matched to a newer claim', () => {
  const out = runBundled('reaper-stale', `
    import { execFileSync } from 'child_process';
    import { Reaper } from './reaper';
    import { setChildSubreaper } from '../sys/native';
    setChildSubreaper();
    const r = new Reaper();
    r.start();
    const pid = Number(execFileSync('/bin/sh', ['-c', '(sleep 0.05; exit 9) >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim());
    setTimeout(() => {
      let got: number | null = null;
      r.claim(pid, new Date(Date.now() + 60000), (e) => { got = e.status; });
      setTimeout(() => { r.stop(); process.stdout.write(JSON.stringify({ got })); }, 200);
    }, 300);
  `);
  expect(JSON.parse(out)).toEqual({ got: null });
});
