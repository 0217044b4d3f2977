// The reaper runs in a separate node process (it makes that process a child subreaper), built
// with esbuild the way the shim is. It must reap re-parented orphans with their exact status,
// keep an exit that arrives before anyone claims the pid, and never steal child_process's
// children (their 'exit' events must all fire, with their own codes).
import { runBundledScript } from '../helpers/bundled-script';

function runBundled(name: string, source: string, timeout = 60000): string {
  return runBundledScript('process', name, source, timeout);
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

// The reaper reads only the main thread's children file (listOwnChildren): the kernel hands an
// orphan to the subreaper's first live thread, the main thread. Checked here with the threadpool
// busy and a worker thread alive, so that other threads exist and run while orphans move.
test('orphans are re-parented to the main thread, with other threads running, and reaped from its children file alone', () => {
  const out = runBundled('reaper-threads', `
    import { execFileSync } from 'child_process';
    import * as fs from 'fs';
    import { Worker } from 'worker_threads';
    import { Reaper } from './reaper';
    import { listOwnChildren } from '../sys/children';
    import { setChildSubreaper } from '../sys/native';
    setChildSubreaper();
    const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
    let busy = true;
    const spin = () => { if (busy) void fs.promises.readFile('/proc/self/status').then(spin); };
    for (let i = 0; i < 8; i++) spin();
    const r = new Reaper();
    r.start();
    const result: any = { orphans: {}, elsewhere: [], missing: [], threads: 0 };
    const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
    (async () => {
      await sleep(100);
      const orphanPids: number[] = [];
      for (let i = 0; i < 20; i++) {
        // They live 3 s: all are still running when the children files are read below.
        orphanPids.push(Number(execFileSync('/bin/sh', ['-c', '(sleep 3; exit ' + (i + 1) + ') >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim()));
      }
      await sleep(200); // every intermediate shell has exited: the orphans are ours
      const tids = fs.readdirSync('/proc/self/task');
      result.threads = tids.length;
      const own = listOwnChildren();
      for (const pid of orphanPids) {
        if (!own.includes(pid)) result.missing.push(pid);
        for (const tid of tids) {
          if (Number(tid) === process.pid) continue;
          const kids = fs.readFileSync('/proc/self/task/' + tid + '/children', 'latin1').split(' ').filter(Boolean).map(Number);
          if (kids.includes(pid)) result.elsewhere.push(pid);
        }
        r.claim(pid, new Date(0), (e) => { result.orphans[pid] = e.status; });
      }
      for (let i = 0; i < 200 && Object.keys(result.orphans).length < 20; i++) await sleep(50);
      result.statuses = orphanPids.map((p) => result.orphans[p]);
      busy = false;
      r.stop();
      await worker.terminate();
      process.stdout.write(JSON.stringify(result));
    })();
  `);
  const result = JSON.parse(out) as { statuses: number[]; elsewhere: number[]; missing: number[]; threads: number };
  expect({ missing: result.missing, elsewhere: result.elsewhere }).toEqual({ missing: [], elsewhere: [] });
  expect(result.threads).toBeGreaterThan(5); // main, V8 platform workers, threadpool, the worker
  expect(result.statuses).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
});

// claim() looks at its own pid at once: an orphan that died before its SIGCHLD was handled is
// delivered by the claim itself (synchronously, no event-loop turn in between).
test('a claim reaps its pid when the exit came before any SIGCHLD was handled', () => {
  const out = runBundled('reaper-claim', `
    import { execFileSync } from 'child_process';
    import { Reaper } from './reaper';
    import { setChildSubreaper } from '../sys/native';
    setChildSubreaper();
    const r = new Reaper();
    r.start();
    const pid = Number(execFileSync('/bin/sh', ['-c', '(sleep 0.05; exit 7) & echo $!'], { encoding: 'utf8' }).trim());
    const until = Date.now() + 300;
    while (Date.now() < until) { /* the orphan dies meanwhile; JavaScript handles no signal */ }
    let got: number | null = null;
    r.claim(pid, new Date(0), (e) => { got = e.status; });
    const sync = got;
    setTimeout(() => { r.stop(); process.stdout.write(JSON.stringify({ sync, got })); }, 100);
  `);
  expect(JSON.parse(out)).toEqual({ sync: 7, got: 7 });
});
