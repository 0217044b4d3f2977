// The stdio of a container `ferry restore` leaves running: FIFOs in its state directory, drained
// into `container.log` there by detached copiers (what conmon is to Podman), which exit when the
// shim closes the FIFOs at the task's end.
//
// Why not no stdio at all: runc restore maps the dumped process's std pipes onto the new task's
// stdio; without any, they become the host's /dev/null, and CRIU can then never dump the process
// again ("Can't lookup mount=… for fd=0 path=/dev/null": a file on a mount outside the
// container). With FIFOs both shims give the container pipes, as for `ctr run`, so a restored
// container can be checkpointed (and migrated) again.
//
// A copier is `cat` with the FIFO's read end as its stdin and container.log (O_APPEND) as its
// stdout: copying bytes needs no more, and a second Node process cost ~0.1 s of CPU on the
// restore's path (docs/benchmarks.md, Round 4: ferry import/export). Hand-over: a FIFO's reader
// sees EOF while no writer exists, and the shim's O_WRONLY open would wait for a reader, so
// `ferry restore` itself holds every FIFO open for writing (O_RDWR) from before the copiers start
// until the task runs (release(); or until ferry exits, whichever comes first): from then on EOF
// means the shim closed its end. stdin gets no data: its only writer is that hold (EOF at release).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InternalError } from '../../errors';
import { mkfifo } from '../../sys/native';

const { O_RDONLY, O_RDWR, O_WRONLY, O_NONBLOCK, O_APPEND, O_CREAT } = fs.constants;

export const CONTAINER_LOG = 'container.log';
/** The copier program (coreutils; found on PATH). */
export const COPIER = 'cat';

export interface ContainerStdio {
  stdin: string;
  stdout: string;
  stderr: string;
  log: string;
  /** The copiers' pids (stdout's, stderr's). */
  pids: number[];
  /** Lets the copiers see EOF from now on (the shim has its ends open). */
  release(): void;
  /** Ends the copiers (a failed restore). */
  kill(): void;
}

const fifoDir = (stateDir: string) => path.join(stateDir, 'stdio');

/** Starts `cat` detached with `reader` as its stdin and `log` as its stdout; resolves once it runs. */
function startCopier(reader: number, log: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // cwd /: a copier lives as long as the container and must not keep the user's directory busy.
    const child = spawn(COPIER, [], { detached: true, cwd: '/', stdio: [reader, log, 'ignore'] });
    child.once('error', (err) => reject(new InternalError(`the log copier (${COPIER}) did not start: ${err.message}`)));
    child.once('spawn', () => { child.unref(); resolve(child); });
  });
}

/** Makes the FIFOs in `stateDir` and starts their copiers, detached. */
export async function startLogCopier(stateDir: string): Promise<ContainerStdio> {
  const dir = fifoDir(stateDir);
  await fs.promises.mkdir(dir, { mode: 0o700 });
  const fifo = (n: string) => path.join(dir, n);
  for (const n of ['stdin', 'stdout', 'stderr']) mkfifo(fifo(n), 0o600);
  const holds: number[] = [];
  const copiers: ChildProcess[] = [];
  const release = () => { for (const fd of holds.splice(0)) fs.closeSync(fd); };
  const kill = () => {
    for (const c of copiers) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
    release();
  };
  try {
    holds.push(fs.openSync(fifo('stdin'), O_RDWR | O_NONBLOCK));
    const log = fs.openSync(path.join(stateDir, CONTAINER_LOG), O_WRONLY | O_APPEND | O_CREAT, 0o600);
    try {
      for (const n of ['stdout', 'stderr']) {
        holds.push(fs.openSync(fifo(n), O_RDWR | O_NONBLOCK));
        // Blocking (cat reads it as a file), and the open does not wait: the hold is a writer.
        const reader = fs.openSync(fifo(n), O_RDONLY);
        try {
          copiers.push(await startCopier(reader, log));
        } finally {
          fs.closeSync(reader);
        }
      }
    } finally {
      fs.closeSync(log);
    }
  } catch (err) {
    kill();
    throw err;
  }
  return {
    stdin: fifo('stdin'), stdout: fifo('stdout'), stderr: fifo('stderr'), log: path.join(stateDir, CONTAINER_LOG),
    pids: copiers.map((c) => c.pid!), release, kill,
  };
}
