// The grouping join handshake on a real unix socket: a live daemon reserves the id; once it has
// started exiting (close), its socket path is gone, so `start` finds nothing to join and makes a
// new daemon; a socket nobody listens on is reported stale; starts of one group are serialised.
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { GroupMembership, joinGroup, withStartLock } from '../../src/daemon/group-membership';
import { ShimListener } from '../../src/protocol/listener';

describe('group membership', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-group-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('join reserves the id; Create or Shutdown of that id releases it; close() unlinks the socket so later joins find nothing', async () => {
    const sock = path.join(dir, 's');
    const expired: number[] = [];
    const m = new GroupMembership(() => expired.push(1));
    const released: string[] = [];
    const [svc] = m.wrapCreateAndShutdown([{ name: 'containerd.task.v2.Task', methods: {
      Create: async (p) => { released.push(String(m.pending)); return p; },
      Shutdown: async (p) => p,
    } }], (p) => p.toString());
    const listener = new ShimListener([svc!, m.service()]);
    await listener.listenPath(sock);
    try {
      expect(await joinGroup(sock, 'c1')).toBe('joined');
      expect(await joinGroup(sock, 'c2')).toBe('joined');
      expect(m.pending).toBe(2);
      await svc!.methods.Create!(Buffer.from('c1'), { metadata: new Map() });
      expect(m.pending).toBe(1);
      // containerd shuts c2 down without creating it (its Create failed before reaching us).
      await svc!.methods.Shutdown!(Buffer.from('c2'), { metadata: new Map() });
      expect(m.pending).toBe(0);
      expect(await joinGroup(sock, 'c5')).toBe('joined');
      m.close(sock);
      expect(m.closing).toBe(true);
      expect(m.pending).toBe(0);
      expect(fs.existsSync(sock)).toBe(false);
      expect(await joinGroup(sock, 'c3')).toBe('absent');
      expect(() => m.reserve('c4')).toThrow(/shutting down/);
      expect(expired).toEqual([]);
    } finally {
      await listener.close();
    }
  });

  test('a socket path nobody listens on (a killed daemon\'s) is stale', async () => {
    const sock = path.join(dir, 'dead');
    // Bound but never listening: connect() gets ECONNREFUSED, as after a SIGKILLed daemon.
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', sock]);
    expect(fs.existsSync(sock)).toBe(true);
    expect(await joinGroup(sock, 'x')).toBe('stale');
  });

  test('withStartLock serialises concurrent starts of one group', async () => {
    const sock = path.join(dir, 'g');
    let inside = 0;
    let maxInside = 0;
    await Promise.all(Array.from({ length: 10 }, () => withStartLock(sock, async () => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 5));
      inside--;
    })));
    expect(maxInside).toBe(1);
    expect(fs.existsSync(`${sock}.lock`)).toBe(false);
  });
});
