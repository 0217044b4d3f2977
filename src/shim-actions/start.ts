// `containerd-shim-ferry-v2 … start`: on containerd's critical path. It creates the listening
// socket itself — so containerd can connect the moment the address is printed — writes the
// bundle's `address` file and answers; containerd reads stdout and stderr as one
// (CombinedOutput) until both close and start has exited: nothing else may ever be printed.
//
// The daemon is this same node process (one node start per container, not two): the launcher
// (shim/containerd-shim-ferry-v2) runs node in the background of a command substitution; node
// writes its answer and a status line (`answerStart`), and when it is to be the daemon it then
// leaves the session and the pipe (detachSession: setsid, /dev/null on fds 0-2) and loads the
// daemon's bundle (src/shim-main.ts) while containerd already connects. The launcher prints
// the answer and exits with start's status, as the Go shim's `start` does after forking its
// daemon.
//
// If the group's daemon is already running (grouping), it is asked to take the container (see
// src/daemon/group-membership.ts for why a handshake), its address is the answer and this
// process exits. The runtime options containerd writes on stdin are read for `shim_cgroup`, as
// the Go shim's manager does: the daemon is moved into that cgroup before its address is printed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bootstrapChoice, bootstrapText } from './bootstrap';
import type { ShimFlags } from './flags';
import { groupIdFor, socketPathFor } from './socket-address';
import { joinGroup, withStartLock } from '../daemon/group-membership';
import { readStartOptions } from './start-options';
import { moveToCgroup } from './shim-cgroup';
import { listenUnix } from '../sys/native';

/** What the daemon's socket queues while the daemon's bundle loads (net.Server's default). */
const LISTEN_BACKLOG = 511;

/**
 * The last line of what node hands the launcher: `<answer>\n<START_STATUS>N`. The launcher
 * prints the answer and exits N; output without it (node died, or the entry's error handler
 * printed a message) is start's error, exit status 1.
 */
export const START_STATUS = 'ferry-start-exit=';

/** The launcher's pid of containerd (`$PPID`), whose oom_score_adj the daemon's is based on. */
export const START_PARENT_ENV = 'FERRY_START_PARENT';

/** What the daemon takes over from `start` when this process goes on as the daemon. */
export interface DaemonHandoff {
  socketPath: string;
  /** The bound, listening socket (close-on-exec). */
  listenFd: number;
  /** The container the daemon is started for: it holds a reservation for it, like a joined one. */
  joinId: string;
}

export interface StartResult {
  /** What start prints (and wrote to `<bundle>/address`). */
  text: string;
  /** Set when this process is to go on as the group's new daemon. */
  daemon?: DaemonHandoff;
}

/** Hands the launcher start's answer (fd 1 is the launcher's pipe; written synchronously). */
export function answerStart(text: string, status: number): void {
  fs.writeSync(1, `${text}\n${START_STATUS}${status}`);
}

export async function start(flags: ShimFlags): Promise<StartResult> {
  const bundle = process.cwd();
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
  const group = groupIdFor(flags.id, flags.namespace, spec.annotations);
  const socketPath = socketPathFor(flags.address, flags.namespace, group);
  const choice = bootstrapChoice(process.env);
  const text = bootstrapText(socketPath, choice);

  const options = readStartOptions();

  privateSocketDir(path.dirname(socketPath));
  return withStartLock(socketPath, async () => {
    // No socket file: no daemon to ask (a connect would only fail with ENOENT).
    const joined = fs.existsSync(socketPath) ? await joinGroup(socketPath, flags.id) : 'absent';
    if (joined === 'joined') {
      // The group's daemon is alive and has reserved the id: this container joins it.
      fs.writeFileSync(path.join(bundle, 'address'), text, { mode: 0o600 });
      return { text };
    }
    // A dead daemon's socket; an exiting one has unlinked its own already. Under the lock no
    // other `start` of the group can be creating a daemon at this path meanwhile.
    if (joined === 'stale' || joined === 'refused') fs.rmSync(socketPath, { force: true });
    return becomeDaemon(flags, bundle, socketPath, text, options.shimCgroup);
  });
}

/** Listens on the group's socket and prepares this process to be its daemon. */
function becomeDaemon(flags: ShimFlags, bundle: string, socketPath: string, text: string, shimCgroup: string): StartResult {
  const listenFd = listenUnix(socketPath, LISTEN_BACKLOG);
  try {
    fs.chmodSync(socketPath, 0o600);
    if (shimCgroup) moveToCgroup(process.pid, shimCgroup);
    adjustOomScore();
    fs.writeFileSync(path.join(bundle, 'address'), text, { mode: 0o600 });
  } catch (err) {
    fs.closeSync(listenFd);
    fs.rmSync(socketPath, { force: true });
    throw err;
  }
  return { text, daemon: { socketPath, listenFd, joinId: flags.id } };
}

/** The shim should die before containerd under memory pressure: its score is containerd's + 1. */
function adjustOomScore(): void {
  const parent = Number(process.env[START_PARENT_ENV]) || process.ppid;
  delete process.env[START_PARENT_ENV];
  try {
    const score = Number.parseInt(fs.readFileSync(`/proc/${parent}/oom_score_adj`, 'utf8'), 10);
    fs.writeFileSync('/proc/self/oom_score_adj', String(Math.min(1000, score + 1)));
  } catch { /* not fatal: e.g. no permission in a user namespace */ }
}

/**
 * The socket directory is root's alone: made 0700 if it is missing (the Go shim, which shares it,
 * makes it 0600; root passes either), tightened to 0700 if group or others have any access (it
 * holds nothing but shim sockets), refused if someone else owns it (that someone could swap our
 * socket).
 */
function privateSocketDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!()) {
    throw new Error(`shim socket directory ${dir} is ${st.isDirectory() ? `owned by uid ${st.uid}` : 'not a directory'}`);
  }
  if (st.mode & 0o077) fs.chmodSync(dir, 0o700);
}
