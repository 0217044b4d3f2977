import { formatLogrus } from '../../src/log';

test('log lines are in logrus text format, as containerd shows Go shims\' lines', () => {
  const line = formatLogrus({ level: 'warn', message: 'copy "x" failed', runtime: 'io.containerd.ferry.v2', pid: 12, namespace: 'default' }, new Date('2026-01-02T03:04:05.678Z'));
  expect(line).toBe('time="2026-01-02T03:04:05.678Z" level=warning msg="copy \\"x\\" failed" namespace=default pid=12 runtime=io.containerd.ferry.v2');
  expect(formatLogrus({ level: 'info', message: 'a', path: '/with space' }, new Date(0))).toContain('path="/with space"');
  // Absent fields are left out, as logrus does, rather than printed as "undefined".
  expect(formatLogrus({ level: 'info', message: 'a', linkname: undefined }, new Date(0))).toBe('time="1970-01-01T00:00:00.000Z" level=info msg="a"');
});

test('createLogger writes one logrus line per call into the FIFO, debug lines only with -debug', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { createLogger } = await import('../../src/log');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-log-'));
  try {
    const fifo = path.join(dir, 'log');
    execFileSync('mkfifo', [fifo]);
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    for (const debug of [false, true]) {
      const log = createLogger({ fifoPath: fifo, debug, defaultMeta: { namespace: 'ns1', pid: 7 } });
      log.debug('dbg');
      log.info('started', { socket: '/run/x' });
      log.warn('careful');
      log.close();
      log.error('after close');
      await new Promise((r) => setTimeout(r, 50));
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(reader, buf);
      const lines = buf.subarray(0, n).toString().trimEnd().split('\n');
      const expected = [...(debug ? ['level=debug msg="dbg" namespace=ns1 pid=7'] : []),
        'level=info msg="started" namespace=ns1 pid=7 socket=/run/x', 'level=warning msg="careful" namespace=ns1 pid=7'];
      expect(lines.map((l) => l.replace(/^time="[^"]+" /, ''))).toEqual(expected);
    }
    fs.closeSync(reader);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
