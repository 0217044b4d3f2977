// `containerd-shim-ferry-v2 … start`: on containerd's critical path, so it stays light (no
// gRPC, no winston). It creates the listening socket itself — so containerd can connect the
// moment the address is printed — hands it to a fully detached daemon as fd 3, writes the
// bundle's `address` file, prints the bootstrap and exits. containerd reads stdout and stderr
// as one (CombinedOutput): nothing else may ever be printed.
//
// If the group's daemon is already running (grouping), it is asked to take the container (see
// src/daemon/group-membership.ts for why a handshake) and its address is returned instead.
// The runtime options containerd writes on stdin are read for `shim_cgroup`, as the Go shim's
// manager does: a new daemon is moved into that cgroup before its address is printed.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { bootstrapChoice, bootstrapText } from './bootstrap';
import type { ShimFlags } from './flags';
import { groupIdFor, socketPathFor } from './socket-address';
import { joinGroup, withStartLock } from '../daemon/group-membership';
import { readStartOptions } from './start-options';
import { moveToCgroup } from './shim-cgroup';
import { daemonEnv } from './daemon-tuning';

export const LISTEN_FD = 3;

function listen(socketPath: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(socketPath, () => { server.off('error', reject); resolve(server); });
  });
}

export async function start(flags: ShimFlags, scriptPath: string): Promise<string> {
  const bundle = process.cwd();
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
  const group = groupIdFor(flags.id, flags.namespace, spec.annotations);
  const socketPath = socketPathFor(flags.address, flags.namespace, group);
  const choice = bootstrapChoice(process.env);
  const text = bootstrapText(socketPath, choice);

  const options = readStartOptions();

  privateSocketDir(path.dirname(socketPath));
  return withStartLock(socketPath, async () => {
    const joined = await joinGroup(socketPath, flags.id);
    if (joined === 'joined') {
      // The group's daemon is alive and has reserved the id: this container joins it.
      fs.writeFileSync(path.join(bundle, 'address'), text, { mode: 0o600 });
      return text;
    }
    // A dead daemon's socket; an exiting one has unlinked its own already. Under the lock no
    // other `start` of the group can be creating a daemon at this path meanwhile.
    if (joined === 'stale' || joined === 'refused') fs.rmSync(socketPath, { force: true });
    return spawnDaemon(flags, scriptPath, bundle, socketPath, text, options.shimCgroup);
  });
}

async function spawnDaemon(flags: ShimFlags, scriptPath: string, bundle: string, socketPath: string, text: string, shimCgroup: string): Promise<string> {
  const server = await listen(socketPath);
  fs.chmodSync(socketPath, 0o600);

  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  // The daemon runs with this process's node flags (the launcher's, shim/containerd-shim-ferry-v2)
  // and environment, which the launcher already rid of NODE_EXTRA_CA_CERTS and NODE_OPTIONS.
  const child = spawn(process.execPath, [...process.execArgv, scriptPath, ...flags.argsWithoutAction], {
    cwd: bundle,
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', fd],
    // FERRY_JOIN_ID: the daemon holds a reservation for its first container, like a joined one.
    env: daemonEnv({ ...process.env, FERRY_SOCKET_PATH: socketPath, FERRY_LISTEN_FD: String(LISTEN_FD), FERRY_JOIN_ID: flags.id }),
  });
  child.unref();
  try {
    if (shimCgroup) moveToCgroup(child.pid!, shimCgroup);
    adjustOomScore(child.pid!);
    fs.writeFileSync(path.join(bundle, 'address'), text, { mode: 0o600 });
  } catch (err) {
    child.kill('SIGKILL');
    fs.rmSync(socketPath, { force: true });
    throw err;
  }
  return text;
}

/** The shim should die before containerd under memory pressure: its score is containerd's + 1. */
function adjustOomScore(pid: number): void {
  try {
    const parent = Number.parseInt(fs.readFileSync(`/proc/${process.ppid}/oom_score_adj`, 'utf8'), 10);
    fs.writeFileSync(`/proc/${pid}/oom_score_adj`, String(Math.min(1000, parent + 1)));
  } catch { /* not fatal: e.g. no permission in a user namespace */ }
}

/**
 * The socket directory is root's alone (0700), as the Go shim creates it: made so if it is
 * missing, tightened if it is looser (it holds nothing but shim sockets), refused if someone else
 * owns it (that someone could swap our socket).
 */
function privateSocketDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!()) {
    throw new Error(`shim socket directory ${dir} is ${st.isDirectory() ? `owned by uid ${st.uid}` : 'not a directory'}`);
  }
  if (st.mode & 0o077) fs.chmodSync(dir, 0o700);
}
