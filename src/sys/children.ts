// The pids of this process's children, as the kernel sees them. The shim's reaper uses this to
// find re-parented container processes (it is a child subreaper) without waitpid(-1), which would
// steal the children libuv spawned and waits for by pid (NOTES.md §3).
import * as fs from 'fs';

/**
 * Pids of this process's children (or of process `pid`'s: [] once it is gone), from /proc/self/task/<tid>/children of every thread: a child
 * belongs to the thread that forked it, and libuv's threadpool threads can be parents too.
 * Includes exited children not reaped yet (zombies). Order is unspecified; no duplicates.
 */
export function listChildren(pid: number | 'self' = 'self'): number[] {
  const pids = new Set<number>();
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch (err) {
    if (pid !== 'self') return []; // that process is gone
    throw new Error(`listChildren: cannot read /proc/self/task: ${(err as Error).message}`, { cause: err });
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1');
    } catch (err) {
      // The thread exited between readdir and read; its children moved to another thread or to us.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') continue;
      throw err;
    }
    for (const field of text.split(' ')) {
      if (field.trim() !== '') pids.add(Number(field));
    }
  }
  return [...pids];
}

/**
 * This process's own children, from one file: /proc/self/task/<pid>/children of the main thread.
 * Enough for the shim's reaper, and a twelfth of listChildren's reads (one per thread) on every
 * SIGCHLD: in the shim every fork is child_process's, which libuv makes on the main thread, and
 * the kernel re-parents an orphan to the subreaper's first live thread (find_new_reaper →
 * find_alive_thread), which is the main thread while the process runs. Other processes' children
 * (runc is a Go program that forks from any thread) need listChildren(pid).
 */
export function listOwnChildren(): number[] {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/self/task/${process.pid}/children`, 'latin1');
  } catch (err) {
    throw new Error(`listOwnChildren: cannot read /proc/self/task/${process.pid}/children: ${(err as Error).message}`, { cause: err });
  }
  const pids: number[] = [];
  for (const field of text.split(' ')) {
    if (field.trim() !== '') pids.push(Number(field));
  }
  return pids;
}

/** `pid` and every process below it, parents before children (a snapshot: it may change). */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  const walk = (p: number) => {
    if (seen.has(p)) return;
    seen.add(p);
    out.push(p);
    for (const c of listChildren(p)) walk(c);
  };
  walk(pid);
  return out;
}
