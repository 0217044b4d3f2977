// Gives memory back after the daemon has worked. Neither V8 nor glibc does it by itself here:
//   - V8's full collections free objects, but the old space stays committed at its high-water
//     mark until a later collection finds whole pages empty; a daemon that does little between
//     calls rarely triggers one;
//   - glibc's free() returns only the top of the main arena to the kernel; pages freed in the
//     middle of a heap or in another thread's arena stay resident (malloc_trim returns them).
// Measured on the long-lived grouped daemon of test/e2e/soak.test.ts (20 containers, 2,000 execs,
// 50 checkpoints; containerd 1.7, ttrpc): without settling its anonymous memory grew 5.4 MiB from
// exec #100 to the end, to 26.5 MiB; settling every 2 s while calls arrive, +0.7 / +2.1 / +1.7 MiB
// to 17.7-18.8 MiB (docs/reliability.md). One daemon with one container, 3 s after start: 10.7 ->
// 10.3 MiB; 50 containers in one group's daemon: 18.8-20.5 -> 13.3 MiB (docs/benchmarks.md).
//
// A settle is one full GC plus malloc_trim on the event loop: 7 ms at best, a median of 34-43 ms
// at load 18 (the debug log says how long each took). It runs once
// soon after start-up (loading leaves garbage), then at most once per interval and only while
// calls arrive: an idle daemon does nothing, a busy one settles every `intervalMs`.

export interface MemorySettlerOptions {
  /** A full garbage collection (V8's gc(), present under node --expose-gc); absent: trim only. */
  gc?: () => void;
  /** Returns freed malloc memory to the kernel (src/sys/native.ts mallocTrim). */
  trim: () => void;
  /** The first settle, after start-up. */
  firstDelayMs: number;
  /** The shortest time between two settles. */
  intervalMs: number;
  /** Told how long each settle took (for the debug log). */
  onSettled?: (ms: number, gcMs: number) => void;
}

export class MemorySettler {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private settles = 0;

  constructor(private readonly o: MemorySettlerOptions) {}

  /** Schedules the start-up settle. */
  start(): void {
    this.schedule(this.o.firstDelayMs);
  }

  /** A call arrived: settle within one interval (if none is pending already). */
  noteActivity(): void {
    if (!this.timer) this.schedule(this.o.intervalMs);
  }

  /** No settle runs after this. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** How many settles ran (for tests). */
  get count(): number {
    return this.settles;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    // unref: a pending settle never keeps the daemon alive.
    this.timer = setTimeout(() => this.settle(), ms).unref();
  }

  private settle(): void {
    this.timer = null;
    const t0 = performance.now();
    this.o.gc?.();
    const t1 = performance.now();
    this.o.trim();
    this.settles++;
    this.o.onSettled?.(performance.now() - t0, t1 - t0);
  }
}
