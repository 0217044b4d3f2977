import { formatLogrus } from '../../src/log';

test('log lines are in logrus text format, as containerd shows Go shims\' lines', () => {
  const line = formatLogrus({ level: 'warn', message: 'copy "x" failed', runtime: 'io.containerd.ferry.v2', pid: 12, namespace: 'default' }, new Date('2026-01-02T03:04:05.678Z'));
  expect(line).toBe('time="2026-01-02T03:04:05.678Z" level=warning msg="copy \\"x\\" failed" namespace=default pid=12 runtime=io.containerd.ferry.v2');
  expect(formatLogrus({ level: 'info', message: 'a', path: '/with space' }, new Date(0))).toContain('path="/with space"');
  // Absent fields are left out, as logrus does, rather than printed as "undefined".
  expect(formatLogrus({ level: 'info', message: 'a', linkname: undefined }, new Date(0))).toBe('time="1970-01-01T00:00:00.000Z" level=info msg="a"');
});
