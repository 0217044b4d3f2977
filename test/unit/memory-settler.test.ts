import * as fs from 'node:fs';
import { forcedGc } from '../../src/daemon/diagnostics';
import { MemorySettler } from '../../src/daemon/memory-settler';
import { mallocTrim } from '../../src/sys/native';

describe('MemorySettler', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function settler() {
    const calls: string[] = [];
    const s = new MemorySettler({
      gc: () => calls.push('gc'), trim: () => calls.push('trim'), firstDelayMs: 1000, intervalMs: 5000,
    });
    return { s, calls };
  }

  test('settles once after start-up: a full GC, then the trim', () => {
    const { s, calls } = settler();
    s.start();
    jest.advanceTimersByTime(999);
    expect(calls).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(calls).toEqual(['gc', 'trim']);
    jest.advanceTimersByTime(60_000);
    expect(s.count).toBe(1); // idle: nothing more
  });

  test('while calls arrive it settles at most once per interval, and once after the last call', () => {
    const { s } = settler();
    s.start();
    jest.advanceTimersByTime(1000);
    for (let t = 0; t < 20_000; t += 100) { s.noteActivity(); jest.advanceTimersByTime(100); }
    expect(s.count).toBe(1 + 4); // 20 s of calls: one settle per 5 s
    s.noteActivity();
    jest.advanceTimersByTime(5000);
    expect(s.count).toBe(6);
    jest.advanceTimersByTime(60_000);
    expect(s.count).toBe(6);
  });

  test('a call during the start-up wait does not add a settle', () => {
    const { s } = settler();
    s.start();
    s.noteActivity();
    jest.advanceTimersByTime(1000);
    expect(s.count).toBe(1);
  });

  test('trims without gc when node runs without --expose-gc; nothing after stop()', () => {
    const calls: string[] = [];
    const s = new MemorySettler({ trim: () => calls.push('trim'), firstDelayMs: 10, intervalMs: 10 });
    s.start();
    jest.advanceTimersByTime(10);
    expect(calls).toEqual(['trim']);
    s.noteActivity();
    s.stop();
    s.noteActivity();
    jest.advanceTimersByTime(1000);
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
    gc();
    await new Promise((r) => setTimeout(r, 200)); // V8 frees backing stores on a helper thread
    const freedNotTrimmed = anonKiB();
    expect(mallocTrim()).toBe(true);
    const trimmed = anonKiB();
    expect(pin[0]).toBe(1);
    expect(freedNotTrimmed - trimmed).toBeGreaterThan(16 * 1024); // of ~62 MiB freed (24 MiB measured)
  });
});
