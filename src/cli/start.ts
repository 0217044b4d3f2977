// `containerd-shim-ferry-v2 … start`: on containerd's critical path, so it stays light (no
// gRPC, no winston). It creates the listening socket itself — so containerd can connect the
// moment the address is printed — hands it to a fully detached daemon as fd 3, writes the
// bundle's `address` file, prints the bootstrap and exits. containerd reads stdout and stderr
// as one (CombinedOutput): nothing else may ever be printed.
//
// If the group's daemon is already running (grouping), its address is returned instead.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { bootstrapChoice, bootstrapText } from './bootstrap';
import type { ShimFlags } from './flags';
import { groupIdFor, socketPathFor } from './socket-address';

export const LISTEN_FD = 3;

function listen(socketPath: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(socketPath, () => { server.off('error', reject); resolve(server); });
  });
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function start(flags: ShimFlags, scriptPath: string): Promise<string> {
  const bundle = process.cwd();
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
  const group = groupIdFor(flags.id, flags.namespace, spec.annotations);
  const socketPath = socketPathFor(flags.address, flags.namespace, group);
  const choice = bootstrapChoice(process.env);
  const text = bootstrapText(socketPath, choice);

  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  let server: net.Server;
  try {
    server = await listen(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (await canConnect(socketPath)) {
      // The group's daemon is alive: this container joins it.
      fs.writeFileSync(path.join(bundle, 'address'), text);
      return text;
    }
    fs.rmSync(socketPath, { force: true });
    server = await listen(socketPath);
  }
  fs.chmodSync(socketPath, 0o600);

  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const child = spawn(process.execPath, [scriptPath, ...flags.argsWithoutAction], {
    cwd: bundle,
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', fd],
    env: { ...process.env, FERRY_SOCKET_PATH: socketPath, FERRY_LISTEN_FD: String(LISTEN_FD) },
  });
  child.unref();
  try {
    adjustOomScore(child.pid!);
    fs.writeFileSync(path.join(bundle, 'address'), text);
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
