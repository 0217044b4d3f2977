// `containerd-shim-ferry-v2 -bundle B … delete`: containerd runs this when it cannot reach the
// shim daemon (it was killed, or vanished while containerd was down). It cleans up what the
// daemon would have: `runc delete --force`, the rootfs mount, the socket; and prints a
// DeleteResponse (exit status 137 = SIGKILL, like the Go shim) on stdout. When the daemon's own
// Delete already cleaned the bundle, the launcher answers without node (./cleaned-record.ts).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { readPidFile } from '../process/pid-file';
import { Runc } from '../runc/runc';
import { unmountRuncLeftovers } from '../runc/half-created';
import { defaultRuntimeOptions, type RuntimeOptions } from '../service/runtime-options';
import { deleteActionResponse } from './cleaned-record';
import { unmountAll } from '../sys/mounts';
import type { ShimFlags } from './flags';
import { withStartLock } from '../daemon/group-membership';

export async function deleteBundle(flags: ShimFlags): Promise<Uint8Array> {
  const bundle = flags.bundle || process.cwd();
  let options: RuntimeOptions = defaultRuntimeOptions();
  try {
    options = { ...options, ...JSON.parse(fs.readFileSync(path.join(bundle, 'options.json'), 'utf8')) };
  } catch { /* Create never got that far: defaults */ }
  const runcRoot = path.join(options.root, flags.namespace);
  const runc = new Runc({
    binary: options.binaryName, root: runcRoot,
    logPath: path.join(bundle, 'log.json'), systemdCgroup: options.systemdCgroup, workDir: bundle,
  });
  const problems: string[] = [];
  // containerd 1.7 runs this action after every shim exit (cleanupAfterDeadShim), so usually the
  // daemon's Delete has already run `runc delete` and runc's state directory for the id is gone.
  // `runc delete --force` would then do nothing (it only removes that directory, and succeeds
  // when there is none): skip the process, which containerd waits for on every container removal.
  if (fs.existsSync(path.join(runcRoot, flags.id))) {
    try {
      // A runc killed mid-restore left the rootfs mounted in its state dir, and runc delete
      // would remove the dir, and the rootfs's files with it (src/runc/half-created.ts).
      unmountRuncLeftovers(runcRoot, flags.id);
      await runc.delete(flags.id, true);
    } catch (err) {
      problems.push(`runc delete: ${(err as Error).message}`);
    }
  }
  try {
    unmountAll(path.join(bundle, 'rootfs'));
  } catch (err) {
    problems.push(`unmount rootfs: ${(err as Error).message}`);
  }
  let pid = 0;
  try { pid = await readPidFile(path.join(bundle, 'init.pid')); } catch { /* never created */ }
  // The daemon's socket, if it left one behind.
  try {
    const address = fs.readFileSync(path.join(bundle, 'address'), 'utf8').trim();
    const socketPath = address.startsWith('{') ? (JSON.parse(address) as { address: string }).address : address;
    const p = socketPath.replace(/^unix:\/\//, '');
    // Under the group's start lock: a concurrent `start` may be creating a new daemon at this
    // very path, and its fresh socket must not be mistaken for our dead one.
    // (No socket file: nothing of ours to remove, and nothing to lock against.)
    if (p.startsWith('/') && fs.existsSync(p)) {
      await withStartLock(p, async () => {
        if (!(await isAlive(p))) fs.rmSync(p, { force: true });
      });
    }
  } catch { /* no address file */ }
  for (const p of problems) process.stderr.write(`time="${new Date().toISOString()}" level=warning msg=${JSON.stringify(p)}\n`);
  return deleteActionResponse(pid);
}

async function isAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
