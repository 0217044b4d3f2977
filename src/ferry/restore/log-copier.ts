// The stdio of a container `ferry restore` leaves running: FIFOs in its state directory, drained
// into `container.log` there by a small detached process (what conmon is to Podman), which exits
// when the shim closes the FIFOs at the task's end.
//
// Why not no stdio at all: runc restore maps the dumped process's std pipes onto the new task's
// stdio; without any, they become the host's /dev/null, and CRIU can then never dump the process
// again ("Can't lookup mount=… for fd=0 path=/dev/null": a file on a mount outside the
// container). With FIFOs both shims give the container pipes, as for `ctr run`, so a restored
// container can be checkpointed (and migrated) again.
//
// Hand-over: the copier opens every FIFO with a second O_RDWR fd that holds it open (a FIFO's
// reader sees EOF while no writer exists, and the shim's O_WRONLY open would wait for a reader),
// writes `ready`, and drops the holds on SIGUSR1 — sent once the task runs, so from then on EOF
// means the shim closed its end. stdin gets no data: its write end is closed on SIGUSR1 (EOF).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { InternalError } from '../../errors';
import { mkfifo } from '../../sys/native';

const { O_RDONLY, O_RDWR, O_WRONLY, O_NONBLOCK, O_APPEND, O_CREAT } = fs.constants;

export const LOG_COPIER_COMMAND = 'log-copier';
export const CONTAINER_LOG = 'container.log';

export interface ContainerStdio {
  stdin: string;
  stdout: string;
  stderr: string;
  log: string;
  /** Lets the copier see EOF from now on (the shim has its ends open). */
  release(): void;
  /** Ends the copier (a failed restore). */
  kill(): void;
}

const fifoDir = (stateDir: string) => path.join(stateDir, 'stdio');

/**
 * Makes the FIFOs in `stateDir` and starts the copier detached; `ready` resolves once it holds
 * them (it starts while the restore prepares the rest: a Node start is ~0.2 s here).
 */
export async function startLogCopier(stateDir: string, ferryScript: string): Promise<ContainerStdio & { ready: Promise<void> }> {
  const dir = fifoDir(stateDir);
  await fs.promises.mkdir(dir, { mode: 0o700 });
  for (const n of ['stdin', 'stdout', 'stderr']) mkfifo(path.join(dir, n), 0o600);
  const child = spawn(process.execPath, [ferryScript, LOG_COPIER_COMMAND, stateDir], { detached: true, stdio: 'ignore' });
  child.unref();
  const readyFile = path.join(dir, 'ready');
  const ready = (async () => {
    const deadline = Date.now() + 10000;
    while (!fs.existsSync(readyFile)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new InternalError(`the log copier for ${stateDir} did not start`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  ready.catch(() => undefined);
  const pid = child.pid!;
  return {
    stdin: path.join(dir, 'stdin'), stdout: path.join(dir, 'stdout'), stderr: path.join(dir, 'stderr'), log: path.join(stateDir, CONTAINER_LOG),
    ready,
    release: () => { try { process.kill(pid, 'SIGUSR1'); } catch { /* gone */ } },
    kill: () => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } },
  };
}

/** The copier itself (`ferry log-copier STATE_DIR`, run by startLogCopier). */
export async function runLogCopier(stateDir: string): Promise<void> {
  const dir = fifoDir(stateDir);
  const log = fs.openSync(path.join(stateDir, CONTAINER_LOG), O_WRONLY | O_APPEND | O_CREAT, 0o600);
  const holds: number[] = [];
  const stdinWriter = fs.openSync(path.join(dir, 'stdin'), O_RDWR | O_NONBLOCK);
  const ended: Promise<void>[] = [];
  for (const name of ['stdout', 'stderr']) {
    const p = path.join(dir, name);
    holds.push(fs.openSync(p, O_RDWR | O_NONBLOCK));
    const socket = new net.Socket({ fd: fs.openSync(p, O_RDONLY | O_NONBLOCK), readable: true, writable: false });
    socket.on('data', (chunk: Buffer) => { fs.writeSync(log, chunk); });
    ended.push(new Promise((resolve) => { socket.once('close', () => resolve()); socket.once('error', () => resolve()); }));
  }
  process.on('SIGUSR1', () => {
    for (const fd of holds.splice(0)) fs.closeSync(fd);
    try { fs.closeSync(stdinWriter); } catch { /* closed */ }
  });
  fs.writeFileSync(path.join(dir, 'ready'), '');
  await Promise.all(ended);
  fs.closeSync(log);
}
