import { MS } from '../../src/sys/native';
import { parseMountOptions } from '../../src/sys/mounts';

describe('mount option parsing (containerd mount_linux.go semantics)', () => {
  test('overlay options are data, known words are flags', () => {
    const p = parseMountOptions(['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2', 'nosuid', 'nodev']);
    expect(p.flags).toBe(MS.NOSUID | MS.NODEV);
    expect(p.data).toBe('index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2');
    expect(p.propagation).toBe(0);
  });
  test('rbind ro, and clearing words undo earlier ones', () => {
    expect(parseMountOptions(['rbind', 'ro']).flags).toBe(MS.BIND | MS.REC | MS.RDONLY);
    expect(parseMountOptions(['ro', 'rw']).flags).toBe(0);
    expect(parseMountOptions(['defaults']).flags).toBe(0);
  });
  test('propagation is kept apart for a second mount call', () => {
    const p = parseMountOptions(['bind', 'rprivate']);
    expect(p.flags).toBe(MS.BIND);
    expect(p.propagation).toBe(MS.PRIVATE | MS.REC);
  });
});
