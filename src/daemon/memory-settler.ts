// Gives memory back after the daemon has worked. Neither V8 nor glibc does it by itself here:
//   - glibc's free() returns only the top of the main arena to the kernel; pages freed in the
//     middle of a heap or in another thread's arena stay resident (malloc_trim returns them);
//   - V8's full collections free objects, but the old space stays committed at its high-water
//     mark until a later collection finds whole pages empty; a daemon that does little between
//     calls rarely triggers one.
// Two steps of different cost, so two rules:
//   - trim (malloc_trim, ~0.4 ms): at most once per `trimIntervalMs`, and only while calls arrive;
//   - a full GC (8-33 ms of the event loop measured on an idle machine): at most once per
//     `gcIntervalMs`, in a moment without calls (`quietMs`) if one comes within `busyWaitMs`, else
//     anyway. In a quiet moment it is V8's low-memory notification (`reduce`) where there is one:
//     the same collection, repeated until nothing more is freed, and then V8 hands its free heap
//     memory back (the emptied semi-space, free ranges inside old-space pages), which gc() keeps
//     committed (docs/benchmarks.md, Round 8). Under calls it stays the one gc(). Run every 2 s
//     whatever the calls, it held up the exits the bench times (/tasks/exit p99 3.4 -> 10.1 ms);
//     never run while calls went on, the soak's daemon grew 6.2-6.4 MiB again; due every 3 s
//     under calls (2 s + 1 s of waiting for a pause): p99 4.4 ms, soak +0.8.
// Once after start-up both run (loading leaves garbage: the bundles' source read to compile them).
// An idle daemon does nothing.
//
// Measured on the long-lived grouped daemon of test/e2e/soak.test.ts (20 containers, 2,000 execs,
// 50 checkpoints, 8 at a time: calls never pause) and in `make bench`:
// docs/reliability.md, docs/benchmarks.md.

export interface MemorySettlerOptions {
  /** A full garbage collection (V8's gc(), present under node --expose-gc); absent: trim only. */
  gc?: () => void;
  /** A full GC that also gives V8's free heap memory back (src/sys/native.ts
   *  lowMemoryNotification), for quiet moments and the start-up settle; absent: `gc` there too. */
  reduce?: () => void;
  /** Returns freed malloc memory to the kernel (src/sys/native.ts mallocTrim). */
  trim: () => void;
  /** The start-up settle (GC and trim). */
  firstDelayMs: number;
  /** The shortest time between two trims while calls arrive. */
  trimIntervalMs: number;
  /** How long without a call counts as quiet, for a full GC. */
  quietMs: number;
  /** The shortest time between two full GCs. */
  gcIntervalMs: number;
  /** Once a full GC is due, how long it waits for a quiet moment before it runs anyway. */
  busyWaitMs: number;
  /** Told what ran and how long it took (for the debug log). */
  onSettled?: (what: SettleKind, ms: number) => void;
  /** The clock (tests). */
  now?: () => number;
}

/** What one settle ran. */
export type SettleKind = 'trim' | 'gc+trim' | 'reduce+trim';

export class MemorySettler {
  private trimTimer: NodeJS.Timeout | null = null;
  private quietTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastCall = -Infinity;
  private lastGc = -Infinity;
  private readonly now: () => number;
  readonly counts = { trim: 0, gc: 0, reduce: 0 };

  constructor(private readonly o: MemorySettlerOptions) {
    // process.hrtime, not performance.now(): Node's global `performance` is a lazy getter that
    // compiles perf_hooks and its dependencies (~2 ms of a new daemon's CPU) on first use.
    this.now = o.now ?? (() => Number(process.hrtime.bigint()) / 1e6);
  }

  /** Schedules the start-up settle. */
  start(): void {
    this.quietTimer = this.timer(this.o.firstDelayMs, () => {
      this.quietTimer = null;
      this.run('quiet');
    });
  }

  /** A call arrived. */
  noteActivity(): void {
    if (this.stopped) return;
    this.lastCall = this.now();
    if (!this.trimTimer) {
      this.trimTimer = this.timer(this.o.trimIntervalMs, () => {
        this.trimTimer = null;
        this.run('trim');
      });
    }
    if (!this.quietTimer) this.quietTimer = this.timer(this.o.quietMs, () => this.quietCheck());
  }

  /** Nothing runs after this. */
  stop(): void {
    this.stopped = true;
    for (const t of [this.trimTimer, this.quietTimer]) if (t) clearTimeout(t);
    this.trimTimer = this.quietTimer = null;
  }

  private quietCheck(): void {
    this.quietTimer = null;
    const now = this.now();
    const dueAt = this.lastGc + this.o.gcIntervalMs;
    const quietAt = this.lastCall + this.o.quietMs;
    const forceAt = dueAt + this.o.busyWaitMs;
    if (now >= dueAt && (now >= quietAt || now >= forceAt)) {
      this.run(now >= quietAt ? 'quiet' : 'busy');
      return;
    }
    // Look again when it could hold; a call in between moves quietAt on.
    this.quietTimer = this.timer(Math.max(dueAt, Math.min(quietAt, forceAt)) - now, () => this.quietCheck());
  }

  /** 'trim': trim alone; 'busy': gc and trim; 'quiet': reduce (else gc) and trim. */
  private run(moment: 'trim' | 'busy' | 'quiet'): void {
    const t0 = this.now();
    const reduce = moment === 'quiet' ? this.o.reduce : undefined;
    const gc = moment !== 'trim' && !reduce ? this.o.gc : undefined;
    if (reduce) this.counts.reduce++;
    if (gc) this.counts.gc++;
    (reduce ?? gc)?.();
    if (reduce || gc) this.lastGc = t0;
    this.o.trim();
    this.counts.trim++;
    this.o.onSettled?.(reduce ? 'reduce+trim' : gc ? 'gc+trim' : 'trim', this.now() - t0);
  }

  private timer(ms: number, fn: () => void): NodeJS.Timeout | null {
    if (this.stopped) return null;
    // unref: a pending settle never keeps the daemon alive.
    return setTimeout(fn, Math.max(0, ms)).unref();
  }
}
