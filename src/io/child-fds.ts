import * as fs from 'node:fs';

/** The fds handed to runc as the container's 0/1/2; 'ignore' means /dev/null. */
export type ChildFds = [number | 'ignore', number | 'ignore', number | 'ignore'];

/**
 * Closes the shim's copies of the container's stdio once runc has passed them on: a write end
 * the shim kept open would keep the reader from ever seeing EOF.
 */
export function closeChildFds(fds: ChildFds): void {
  for (let i = 0; i < fds.length; i++) {
    const fd = fds[i];
    if (typeof fd === 'number') {
      try { fs.closeSync(fd); } catch { /* already closed */ }
    }
    fds[i] = 'ignore';
  }
}
