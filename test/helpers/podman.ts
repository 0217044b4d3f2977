// Podman as a real producer of checkpoint archives (`podman container checkpoint --export`):
// bookworm's podman 4.3.1 with runc and the machine's CRIU. Podman's store is machine-wide, so
// every container gets a unique name and is removed by name; the test image is loaded once
// under the name the e2e containerd imports it as.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildTestImage, TEST_IMAGE_NAME } from './image';

const run = promisify(execFile);

/** Podman's defaults ask for rlimits above this machine's hard limits: runc refuses them. */
const RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

export async function podman(args: string[], timeoutMs = 120000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run('podman', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`podman ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** Loads the e2e busybox image into Podman's store (once; the same content containerd imports). */
export async function ensurePodmanImage(): Promise<{ name: string; configDigest: string }> {
  const image = buildTestImage();
  const have = await podman(['image', 'exists', TEST_IMAGE_NAME]).then(() => true, () => false);
  if (!have) await podman(['load', '-i', image.tarPath]);
  return { name: TEST_IMAGE_NAME, configDigest: image.configDigest };
}

export interface PodmanExportOptions {
  compress?: 'zstd' | 'gzip' | 'none';
  /** Extra `podman run` flags. */
  runFlags?: string[];
  /** Wait this long between start and checkpoint (ms). */
  settleMs?: number;
  /** Called while the container runs, before it is checkpointed. */
  beforeCheckpoint?: (name: string) => Promise<void>;
}

/** Runs `sh -c script` in Podman, exports a checkpoint of it to `file`, removes the container. */
export async function podmanCheckpointExport(name: string, script: string, file: string, o: PodmanExportOptions = {}): Promise<void> {
  await ensurePodmanImage();
  await podman(['run', '-d', ...RUN_FLAGS, ...(o.runFlags ?? []), '--name', name, TEST_IMAGE_NAME, 'sh', '-c', script]);
  try {
    await new Promise((r) => setTimeout(r, o.settleMs ?? 1500));
    await o.beforeCheckpoint?.(name);
    await podman(['container', 'checkpoint', '--export', file, ...(o.compress ? ['--compress', o.compress] : []), name]);
  } finally {
    await podman(['rm', '-f', name]).catch(() => undefined);
  }
}

export async function podmanRemove(name: string): Promise<void> {
  await podman(['rm', '-f', name]).catch(() => undefined);
}
