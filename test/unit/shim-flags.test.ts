import { parseFlags } from '../../src/shim-actions/flags';
import { bootstrapChoice, bootstrapText } from '../../src/shim-actions/bootstrap';
import { SOCKET_DIR, groupIdFor, socketPathFor } from '../../src/shim-actions/socket-address';
import { createHash } from 'crypto';

describe('shim flags (Go flag syntax)', () => {
  test('containerd start command line', () => {
    const f = parseFlags(['-namespace', 'default', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'c1', '-debug', 'start']);
    expect(f).toMatchObject({ namespace: 'default', address: '/run/containerd/containerd.sock', publishBinary: '/usr/bin/containerd', id: 'c1', debug: true, action: 'start' });
    // The daemon is started with the same flags, without the action.
    expect(f.argsWithoutAction).toEqual(['-namespace', 'default', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'c1', '-debug']);
  });
  test('delete with -bundle and = forms', () => {
    const f = parseFlags(['--namespace=k8s.io', '-id=x', '-bundle', '/b', 'delete']);
    expect(f).toMatchObject({ namespace: 'k8s.io', id: 'x', bundle: '/b', action: 'delete', debug: false });
  });
  test('no action means the daemon; -v means version', () => {
    expect(parseFlags(['-id', 'x']).action).toBe('');
    expect(parseFlags(['-v']).version).toBe(true);
  });
  test('unknown flags are refused like Go does', () => {
    expect(() => parseFlags(['-nope', 'start'])).toThrow('flag provided but not defined: -nope');
  });
});

describe('bootstrap output', () => {
  test('default: plain ttrpc address, task API v2', () => {
    const c = bootstrapChoice({});
    expect(c).toEqual({ protocol: 'ttrpc', version: 2 });
    expect(bootstrapText('/run/containerd/s/abc', c)).toBe('unix:///run/containerd/s/abc');
  });
  test('gRPC: JSON with a bare socket path', () => {
    const text = bootstrapText('/run/containerd/s/abc', bootstrapChoice({ FERRY_PROTOCOL: 'grpc' }));
    expect(JSON.parse(text)).toEqual({ version: 2, address: '/run/containerd/s/abc', protocol: 'grpc' });
  });
  test('task API v3 over ttrpc: JSON with a unix:// address', () => {
    const text = bootstrapText('/s/abc', bootstrapChoice({ FERRY_TASK_API_VERSION: '3' }));
    expect(JSON.parse(text)).toEqual({ version: 3, address: 'unix:///s/abc', protocol: 'ttrpc' });
  });
});

describe('socket address and grouping', () => {
  test('sha256 of address/namespace/group under the socket dir, like the Go shim', () => {
    const p = socketPathFor('/run/containerd/containerd.sock', 'default', 'c1');
    const want = createHash('sha256').update('/run/containerd/containerd.sock/default/c1').digest('hex');
    expect(p.endsWith(`/${want}`)).toBe(true);
    expect(p.startsWith('/')).toBe(true);
    // Any length (SHA-256 pads to 64-byte blocks) and non-ASCII ids digest as node:crypto does.
    for (const group of ['', 'x'.repeat(20), 'x'.repeat(21), 'x'.repeat(64), 'x'.repeat(300), 'grüppe-ω-😀']) {
      const digest = createHash('sha256').update(`/run/containerd/containerd.sock/default/${group}`.replace(/\/$/, '')).digest('hex');
      expect(socketPathFor('/run/containerd/containerd.sock', 'default', group)).toBe(`${SOCKET_DIR}/${digest}`);
    }
  });
  test('group annotations in order of precedence, else the id', () => {
    expect(groupIdFor('c1', 'ns', { 'io.containerd.runc.v2.group': 'g', 'io.kubernetes.cri.sandbox-id': 's' })).toBe('g');
    expect(groupIdFor('c1', 'ns', { 'io.kubernetes.cri.sandbox-id': 's' })).toBe('s');
    expect(groupIdFor('c1', 'ns', {})).toBe('c1');
    expect(groupIdFor('c1', 'ns', undefined)).toBe('c1');
  });
});
