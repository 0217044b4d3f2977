// Progress of long transfers (writing a checkpoint archive, pushing or pulling an image): a bar on
// stderr with bytes done/total, rate and time left — drawn only when stderr is a terminal and
// --json is off, so pipes, logs and scripts see nothing of it. cli-progress draws the bar; the
// byte and rate formatting is ours (its own formatter knows only plain numbers).
import { SingleBar } from 'cli-progress';
import type { CliContext, GlobalOptions } from './context';

export interface Progress {
  /** Starts (or restarts) the bar for a phase of `total` bytes; 0 = total not known yet. */
  start(label: string, total: number): void;
  /** Bytes done so far; `total` when it changed (pull and push learn sizes as they go). */
  update(done: number, total?: number): void;
  /** Removes the bar (the line is cleared: the command's result follows). */
  stop(): void;
}

const NO_PROGRESS: Progress = { start() {}, update() {}, stop() {} };

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB" (binary units, one decimal from KiB on). */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Seconds as "42s", "3m05s", "1h02m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line: "export [=====-----]  42% 108.0 MiB/256.0 MiB 35.2 MiB/s 4s left". */
export function progressLine(label: string, done: number, total: number, elapsedMs: number, barSize = 24): string {
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const rateText = rate > 0 ? `${formatBytes(Math.round(rate))}/s` : '--/s';
  if (total <= 0) return `${label} ${formatBytes(done)} ${rateText}`;
  const fraction = Math.min(1, done / total);
  const filled = Math.round(fraction * barSize);
  const left = rate > 0 ? formatDuration((total - done) / rate) : '--';
  return `${label} [${'='.repeat(filled)}${'-'.repeat(barSize - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` +
    `${formatBytes(done)}/${formatBytes(total)} ${rateText} ${left} left`;
}

class TerminalProgress implements Progress {
  private bar?: SingleBar;
  private label = '';
  private startedAt = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  start(label: string, total: number): void {
    this.stop();
    this.label = label;
    this.startedAt = Date.now();
    this.bar = new SingleBar({
      stream: this.stream,
      fps: 5,
      clearOnComplete: true,
      hideCursor: false,
      linewrap: false,
      format: (_opts, params) => progressLine(this.label, params.value, params.total, Date.now() - this.startedAt),
    });
    this.bar.start(total, 0);
  }

  update(done: number, total?: number): void {
    if (!this.bar) return;
    if (total !== undefined) this.bar.setTotal(total);
    this.bar.update(done);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** The progress display for this invocation: a bar on a terminal, nothing otherwise. */
export function createProgress(ctx: CliContext, globals: GlobalOptions): Progress {
  if (globals.json || !ctx.stderr.isTTY) return NO_PROGRESS;
  return new TerminalProgress(ctx.stderr as unknown as NodeJS.WriteStream);
}
