import * as fs from 'node:fs';
import { forcedGc } from '../../src/daemon/diagnostics';
import { MemorySettler } from '../../src/daemon/memory-settler';
import { mallocTrim } from '../../src/sys/native';
import { runBundledScript } from '../helpers/bundled-script';
import { launcherNodeFlags } from '../helpers/launcher-flags';

describe('MemorySettler', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function settler(gc = true, reduce = false) {
    const calls: string[] = [];
    const s = new MemorySettler({
      gc: gc ? () => calls.push('gc') : undefined, trim: () => calls.push('trim'),
      reduce: reduce ? () => calls.push('reduce') : undefined,
      firstDelayMs: 1000, trimIntervalMs: 2000, quietMs: 1000, gcIntervalMs: 10_000, busyWaitMs: 5000,
      now: () => Date.now(), // jest's fake clock
    });
    return { s, calls };
  }
  /** Calls every `every` ms for `forMs`. */
  function busy(s: MemorySettler, forMs: number, every = 100): void {
    for (let t = 0; t < forMs; t += every) { s.noteActivity(); jest.advanceTimersByTime(every); }
  }

  test('after start-up: one full GC, then the trim; an idle daemon then does nothing', () => {
    const { s, calls } = settler();
    s.start();
    jest.advanceTimersByTime(999);
    expect(calls).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(calls).toEqual(['gc', 'trim']);
    jest.advanceTimersByTime(600_000);
    expect(calls).toEqual(['gc', 'trim']);
  });

  test('while calls never pause: a trim per interval, a full GC per interval + busy wait', () => {
    const { s } = settler();
    s.start();
    jest.advanceTimersByTime(1000);
    busy(s, 60_000); // a call every 100 ms for a minute
    expect(s.counts.gc).toBe(1 + 4); // the start-up one, then every 10 + 5 s
    expect(s.counts.trim).toBe(1 + 30 + 4); // one per 2 s, and one with each GC
  });

  test('a full GC once the calls pause for quietMs, and at most once per gcIntervalMs', () => {
    const { s, calls } = settler();
    s.start();
    jest.advanceTimersByTime(1000); // start-up GC at t=1 s
    busy(s, 3000); // until t=4 s
    jest.advanceTimersByTime(1000); // quiet since 4 s, but the last GC was at 1 s: not yet
    expect(s.counts.gc).toBe(1);
    jest.advanceTimersByTime(6000); // t=11 s: quiet and due
    expect(s.counts.gc).toBe(2);
    expect(calls.slice(-2)).toEqual(['gc', 'trim']);
    busy(s, 14_000, 500); // calls every 500 ms, never quiet for 1 s: the GC due at 21 s waits
    expect(s.counts.gc).toBe(2); // t=25 s
    busy(s, 1000, 500); // t=26 s: 5 s of waiting for a pause is over
    expect(s.counts.gc).toBe(3);
  });

  test('a call in the quiet wait moves the full GC on', () => {
    const { s } = settler();
    s.start();
    jest.advanceTimersByTime(11_000);
    s.noteActivity();
    jest.advanceTimersByTime(900);
    s.noteActivity();
    jest.advanceTimersByTime(900);
    expect(s.counts.gc).toBe(1);
    jest.advanceTimersByTime(100);
    expect(s.counts.gc).toBe(2);
  });

  test('with reduce: the start-up and quiet-moment collections reduce, the one under calls is gc()', () => {
    const { s, calls } = settler(true, true);
    s.start();
    jest.advanceTimersByTime(1000);
    expect(calls).toEqual(['reduce', 'trim']);
    jest.advanceTimersByTime(10_000);
    s.noteActivity();
    jest.advanceTimersByTime(1000); // quiet for 1 s and due
    expect(calls.slice(-2)).toEqual(['reduce', 'trim']);
    busy(s, 20_000, 500); // never quiet: the due collection runs anyway, as gc()
    expect(s.counts.gc).toBeGreaterThanOrEqual(1);
    expect(calls.filter((c) => c === 'gc').length).toBe(s.counts.gc);
    expect(s.counts.reduce).toBe(2);
  });

  test('without --expose-gc it only trims; nothing runs after stop()', () => {
    const { s, calls } = settler(false);
    s.start();
    jest.advanceTimersByTime(1000);
    expect(calls).toEqual(['trim']);
    s.noteActivity();
    s.stop();
    s.noteActivity();
    jest.advanceTimersByTime(60_000);
    expect(calls).toEqual(['trim']);
  });
});

describe('mallocTrim', () => {
  const anonKiB = () => Number(/RssAnon:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);

  test('returns the pages of freed malloc memory inside the heap to the kernel', async () => {
    const gc = forcedGc();
    // 4,000 x 16 KiB buffers come from malloc's heap (below its mmap threshold); one small
    // buffer allocated after them holds the heap's top, so free() alone cannot shrink it.
    let keep: Buffer[] | null = [];
    for (let i = 0; i < 4000; i++) keep.push(Buffer.allocUnsafeSlow(16 * 1024).fill(1));
    const pin = Buffer.allocUnsafeSlow(64).fill(1);
    keep = null;
    // V8 frees the buffers' backing stores after a GC, on a helper thread: wait until it has.
    for (let i = 0; i < 100 && process.memoryUsage().arrayBuffers > 16 * 1024 * 1024; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(16 * 1024 * 1024);
    const freedNotTrimmed = anonKiB();
    expect(mallocTrim()).toBe(true);
    const trimmed = anonKiB();
    expect(pin[0]).toBe(1);
    expect(freedNotTrimmed - trimmed).toBeGreaterThan(16 * 1024); // of ~62 MiB freed (24 MiB measured)
  });
});

describe('lowMemoryNotification', () => {
  test('gives back the heap memory V8 keeps after gc() (under the launcher\'s V8 flags)', () => {
    // The daemon's heap configuration (shim/containerd-shim-ferry-v2), in a process of its own.
    const out = runBundledScript('sys', 'low-memory', `
      import * as fs from 'fs';
      import { lowMemoryNotification } from './native';
      const anon = () => Number(/Anonymous:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/smaps_rollup', 'utf8'))![1]);
      const gc = (globalThis as unknown as { gc: () => void }).gc;
      let junk: object[] | null = [];
      for (let i = 0; i < 50_000; i++) junk.push({ i, s: 'x' + i });
      junk = null;
      for (let i = 0; i < 4; i++) gc();
      const afterGc = anon();
      gc();
      const afterOneMoreGc = anon();
      const present = lowMemoryNotification();
      console.log(JSON.stringify({ afterGc, afterOneMoreGc, present, reduced: anon() }));
    `, 20_000, launcherNodeFlags());
    const r = JSON.parse(out) as { afterGc: number; afterOneMoreGc: number; present: boolean; reduced: number };
    expect(r.present).toBe(true);
    // Past four gc()s a fifth gives nothing back; the notification gives back over 1 MiB (2.1-2.5
    // measured).
    expect(r.afterGc - r.afterOneMoreGc).toBeLessThan(512);
    expect(r.afterOneMoreGc - r.reduced).toBeGreaterThan(1024);
  });
});
