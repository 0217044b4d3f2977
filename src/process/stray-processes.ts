// Processes a failed `runc exec` left running in a container. runc killed in the middle of an
// exec (the OOM killer, a crash) may already have started the process without having written its
// pid file: the shim never learns its pid, and containerd was told the exec failed. The process
// was re-parented to us (the daemon is their child subreaper), so it is one of our children that
// nobody claimed, living in the container's pid namespace. Once no other exec start of that
// container is in flight (a successful one's process is also briefly ours and unclaimed), such a
// process can only be a stray: it is killed, with everything it started.
import * as fs from 'node:fs';
import { listChildren, processTree } from '../sys/children';

/** Pid namespace of a process (`pid:[inode]`), or undefined when it is gone. */
function pidNamespace(pid: number): string | undefined {
  try { return fs.readlinkSync(`/proc/${pid}/ns/pid`); } catch { return undefined; }
}

/**
 * Our children in the pid namespace of `initPid` that `isKnown` does not account for. Only
 * meaningful for a container with a pid namespace of its own (else every host process shares it).
 */
export function strayChildren(initPid: number, isKnown: (pid: number) => boolean, children: () => number[] = listChildren): number[] {
  const ns = pidNamespace(initPid);
  if (!ns || ns === pidNamespace(process.pid)) return [];
  return children().filter((pid) => pid !== initPid && !isKnown(pid) && pidNamespace(pid) === ns);
}

/** SIGKILLs each stray and everything it started; returns the pids signalled. */
export function killStrays(strays: number[]): number[] {
  const killed: number[] = [];
  for (const stray of strays) {
    for (const pid of processTree(stray)) { // listed whole before any of it is killed
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch { /* gone already */ }
    }
  }
  return killed;
}
