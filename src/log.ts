// The daemon's log, written into the `log` FIFO containerd creates in the bundle. containerd 1.7
// copies that FIFO verbatim into its own stderr, next to the Go shims' logrus lines, so the
// format is logrus's text format: time="…" level=info msg="…" key=value …
// `-debug` raises the level to debug.
//
// Written with Node's own stream, without winston: a level check, one formatted line, one
// write. winston (with logform, readable-stream and colorspace, ~330 KiB of bundled source)
// cost the daemon ~8 ms of CPU to load and ~1 MiB of heap at every start (docs/benchmarks.md),
// for a format it did not provide.
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface Logger {
  debug(msg: string, meta?: Record<string, unknown>): void;
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

function quoteIfNeeded(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_./:@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** logrus TextFormatter (no colours): time="RFC3339Nano" level=… msg="…" fields sorted. */
export function formatLogrus(info: { level: string; message: unknown; [k: string]: unknown }, now = new Date()): string {
  const fields = Object.keys(info)
    .filter((k) => k !== 'level' && k !== 'message' && info[k] !== undefined)
    .sort()
    .map((k) => `${k}=${quoteIfNeeded(info[k])}`);
  const level = info.level === 'warn' ? 'warning' : info.level;
  return [`time=${JSON.stringify(now.toISOString())}`, `level=${level}`, `msg=${JSON.stringify(String(info.message))}`, ...fields].join(' ');
}

export interface LoggerOptions {
  /** The bundle's `log` FIFO; when absent (or it cannot be opened) logs go to stderr. */
  fifoPath?: string;
  debug: boolean;
  defaultMeta?: Record<string, unknown>;
}

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;
type Level = keyof typeof LEVELS;

export function createLogger(opts: LoggerOptions): Logger & { close(): void } {
  let sock: net.Socket | null = null;
  if (opts.fifoPath) {
    try {
      // O_RDWR: never blocks, whether or not containerd has the read side open right now.
      const fd = fs.openSync(opts.fifoPath, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      sock = new net.Socket({ fd, readable: false, writable: true });
      sock.on('error', () => { /* containerd went away: logs are best effort */ });
      sock.unref();
    } catch { /* fall back to stderr */ }
  }
  // process.stderr is created on first use (a stream over fd 2, ~1 ms of a daemon's start):
  // touched only when there is no FIFO.
  const stream: NodeJS.WritableStream = sock ?? process.stderr;
  const max = opts.debug ? LEVELS.debug : LEVELS.info;
  let closed = false;
  const at = (level: Level) => (message: string, meta?: Record<string, unknown>) => {
    if (closed || LEVELS[level] > max) return;
    stream.write(`${formatLogrus({ ...opts.defaultMeta, ...meta, level, message })}\n`);
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    close: () => { closed = true; sock?.end(); },
  };
}

/** A logger that drops everything (tests, and the `start` path). */
export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
