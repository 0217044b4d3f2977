// Summary statistics for a benchmark's samples. Medians and p90 rather than means alone: this
// machine is a shared VM, and a single stall would otherwise dominate a mean of 20.

export interface Summary {
  n: number;
  median: number;
  p90: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile (p in 0..100) of already sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  // Median of an even count is the mean of the two middle values.
  const median = n === 0 ? NaN : n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return {
    n,
    median,
    p90: percentile(sorted, 90),
    mean: n === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / n,
    min: sorted[0] ?? NaN,
    max: sorted[n - 1] ?? NaN,
  };
}

/** ferry / go, rounded for display; NaN when either side is missing. */
export function ratio(ferry: number | undefined, go: number | undefined): number {
  if (ferry === undefined || go === undefined || !Number.isFinite(ferry) || !Number.isFinite(go) || go === 0) return NaN;
  return ferry / go;
}

export function fmt(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '–';
}

/** Milliseconds elapsed since `start` (from process.hrtime.bigint()). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
