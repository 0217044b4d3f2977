// What a checkpoint records about the host it was taken on, as Podman records it on a checkpoint
// image: versions of ferry, containerd, CRIU (from CRIU's own dump.log: the CRIU that dumped, not
// whichever is on our PATH) and the OCI runtime, the kernel, the architecture, the cgroup version
// and the distribution. A restore elsewhere fails for reasons these explain (an older CRIU, a
// kernel without a feature, a CPU of another architecture). A fact that cannot be found is left
// out rather than guessed.
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { hostPlatform } from '../containerd/transfer';
import { FERRY_VERSION } from '../version';
import { criuDumpFacts } from '../../format/checkpoint-info';
import { openCheckpointSource } from '../../format/checkpoint-source';

const run = promisify(execFile);
/** statfs(2) f_type of a cgroup2 mount. */
const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface HostFacts {
  ferryVersion: string;
  containerdVersion?: string;
  criuVersion?: string;
  runtimeVersion?: string;
  kernel: string;
  arch: string;
  cgroupVersion: 'v1' | 'v2';
  distributionName?: string;
  distributionVersion?: string;
}

/** "runc version 1.1.15" → "1.1.15" (any runtime printing "<name> version X" first). */
async function runtimeBinaryVersion(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 10000 });
    return /version\s+(\S+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

async function cgroupVersion(): Promise<'v1' | 'v2'> {
  try {
    return (await fsp.statfs('/sys/fs/cgroup')).type === CGROUP2_SUPER_MAGIC ? 'v2' : 'v1';
  } catch {
    return 'v1';
  }
}

async function distribution(): Promise<{ name?: string; version?: string }> {
  try {
    const text = await fsp.readFile('/etc/os-release', 'utf8');
    const field = (k: string) => new RegExp(`^${k}=("?)([^"\\n]*)\\1$`, 'm').exec(text)?.[2];
    return { name: field('ID'), version: field('VERSION_ID') };
  } catch {
    return {};
  }
}

/**
 * @param checkpointDir a directory laid out as an unpacked archive (dump.log at its top), from
 *                      which CRIU's version is read
 * @param runtimeBinary the OCI runtime to ask for its version (default runc)
 */
export async function hostFacts(checkpointDir: string, containerdVersion: string | undefined, runtimeBinary = 'runc'): Promise<HostFacts> {
  const [criu, runtimeVersion, cgroups, distro] = await Promise.all([
    openCheckpointSource(checkpointDir).then(criuDumpFacts).catch(() => ({ criuVersion: undefined })),
    runtimeBinaryVersion(runtimeBinary),
    cgroupVersion(),
    distribution(),
  ]);
  return {
    ferryVersion: FERRY_VERSION,
    containerdVersion,
    criuVersion: criu.criuVersion,
    runtimeVersion,
    kernel: os.release(),
    arch: hostPlatform().architecture,
    cgroupVersion: cgroups,
    distributionName: distro.name,
    distributionVersion: distro.version,
  };
}
