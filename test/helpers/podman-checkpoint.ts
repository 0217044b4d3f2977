// Podman (bookworm's 4.3.1, with runc and the machine's CRIU) as a real producer of checkpoint
// archives for the inspect tests. Podman's store is machine-wide and other engineers' tests use
// it at the same time: the test image is copied in under a name unique to this process (skopeo
// from the OCI layout tar the e2e containerd imports), containers get unique names, and both are
// removed by name — never anything else.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildTestImage } from './image';

const run = promisify(execFile);

/** Podman's default rlimits are above this machine's hard limits, and runc refuses them. */
export const PODMAN_RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

export async function podmanCmd(args: string[], timeoutMs = 120000): Promise<string> {
  try {
    return (await run('podman', args, { timeout: timeoutMs, maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`podman ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** Copies the e2e busybox image into Podman's store as `name` (e.g. localhost/ferry-inspect-<pid>:latest). */
export async function loadPodmanTestImage(name: string): Promise<void> {
  await run('skopeo', ['copy', '--quiet', `oci-archive:${buildTestImage().tarPath}`, `containers-storage:${name}`], { timeout: 120000 });
}

/** Removes what this process made: the container, then the image name (only untagged if another name shares it). */
export async function removePodmanLeftovers(containers: string[], image: string): Promise<void> {
  for (const c of containers) await podmanCmd(['rm', '-f', '-t', '0', c]).catch(() => undefined);
  await podmanCmd(['rmi', image]).catch(() => undefined);
}
