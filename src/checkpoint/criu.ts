// Is CRIU there, and new enough? Checked before a checkpoint or a restore touches anything, so
// the user gets "criu was not found (looked in …)" instead of runc's later, vaguer failure, and
// a refused restore leaves nothing half-created.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError } from '../errors';
import { childProcess } from '../loader/on-first-use';
import { reaper } from '../process/reaper';
import type { TcpSocketUse } from './tcp-sockets';
import { binaryIdentity, cachedCriuVersion, rememberCriuVersion } from './criu-version-cache';

/**
 * The oldest CRIU ferry accepts: runc 1.1 itself refuses anything older than 3.0.0 for
 * checkpoint/restore (libcontainer's checkCriuVersion), and an older CRIU would fail later
 * with a less helpful message.
 */
export const MIN_CRIU_VERSION = '3.0.0';

export interface CriuInfo {
  /** Absolute path of the binary that will be used. */
  path: string;
  /** Version as `criu --version` prints it (e.g. "4.1.1"). */
  version: string;
}

// The lookup and the identity's stat are synchronous: they run on every checkpoint and restore,
// a few PATH entries each, and a threadpool round trip per call was on the restore's critical
// path (format/open-regular.ts).
function isExecutableFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds CRIU: `criuPath` (Options.criu_path) when set, else `criu` in the PATH directories.
 * The error says where it looked.
 */
export async function findCriu(criuPath: string, envPath: string = process.env.PATH ?? ''): Promise<string> {
  if (criuPath) {
    if (isExecutableFile(criuPath)) return criuPath;
    throw new FailedPreconditionError(`criu was not found: options.criu_path ${JSON.stringify(criuPath)} is not an executable file`);
  }
  const dirs = envPath.split(':').filter((d) => d !== '');
  for (const dir of dirs) {
    const p = path.join(dir, 'criu');
    if (path.isAbsolute(p) && isExecutableFile(p)) return p;
  }
  throw new FailedPreconditionError(`criu was not found in PATH (looked in: ${dirs.length ? dirs.join(', ') : '(empty PATH)'})`);
}

/** "Version: 4.1.1" (or "Version: 3.17") from `criu --version` output. */
export function parseCriuVersion(output: string): string | undefined {
  const m = /^Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/m.exec(output);
  if (!m) return undefined;
  return `${m[1]}.${m[2]}.${m[3] ?? '0'}`;
}

/** Compares dotted numeric versions: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Runs `criu --version` (registered with the reaper like every child we spawn). */
export function criuVersionOutput(binary: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = childProcess().execFile(binary, ['--version'], { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new FailedPreconditionError(`criu at ${binary} did not report its version: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
    reaper.trackLibuvChild(child);
  });
}

/**
 * Finds CRIU and checks its version against MIN_CRIU_VERSION. The version `criu --version`
 * printed is remembered for that very file (criu-version-cache.ts); a changed binary is asked again.
 */
export async function ensureCriu(criuPath: string, envPath?: string, cacheDir?: string): Promise<CriuInfo> {
  const binary = await findCriu(criuPath, envPath);
  let identity: string | undefined;
  try {
    identity = binaryIdentity(fs.statSync(binary, { bigint: true }));
  } catch {
    /* no identity to remember it by: CRIU is asked */
  }
  let version = identity ? await cachedCriuVersion(binary, identity, cacheDir) : undefined;
  if (!version) {
    const out = await criuVersionOutput(binary);
    version = parseCriuVersion(out);
    if (!version) throw new FailedPreconditionError(`criu at ${binary} printed no version: ${JSON.stringify(out.trim().slice(0, 200))}`);
    // Only a version ferry accepts is remembered: a refusal is asked again next time.
    if (identity && compareVersions(version, MIN_CRIU_VERSION) >= 0) await rememberCriuVersion(binary, identity, version, cacheDir);
  }
  if (compareVersions(version, MIN_CRIU_VERSION) < 0) {
    throw new FailedPreconditionError(`criu at ${binary} is version ${version}; ferry needs ${MIN_CRIU_VERSION} or newer`);
  }
  return { path: binary, version };
}

/**
 * From Linux 6.16 on, CRIU older than 4.2 cannot dump any TCP socket, listening or connected:
 * it fails with `sockets: Can't get 1:16 opt: Operation not supported` (fixed in CRIU 4.2).
 */
export const TCP_DUMP_KERNEL = '6.16';
export const TCP_DUMP_MIN_CRIU = '4.2.0';

/** "6.18.0-1-amd64" → "6.18.0"; undefined when the release does not start with numbers. */
export function kernelVersion(release: string = os.release()): string | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  return m ? `${m[1]}.${m[2]}.${m[3] ?? '0'}` : undefined;
}

/** Whether this CRIU can dump TCP sockets on the running kernel (older kernels: any CRIU can). */
export function criuDumpsTcp(criu: CriuInfo, release: string = os.release()): boolean {
  const kernel = kernelVersion(release);
  if (!kernel || compareVersions(kernel, TCP_DUMP_KERNEL) < 0) return true;
  return compareVersions(criu.version, TCP_DUMP_MIN_CRIU) >= 0;
}

/**
 * Refuses a dump that the installed CRIU cannot do on this kernel, before CRIU runs, with both
 * versions and the fix instead of CRIU's generic failure: a container holding a TCP socket on
 * a kernel from 6.16 on needs CRIU 4.2 or newer. `sockets` is asked for only when it matters.
 */
export async function assertCriuCanDumpTcp(criu: CriuInfo, sockets: () => Promise<TcpSocketUse[]>, release: string = os.release()): Promise<void> {
  if (criuDumpsTcp(criu, release)) return;
  const held = await sockets();
  if (held.length === 0) return;
  const s = held[0]!;
  const more = held.length > 1 ? ` and ${held.length - 1} more` : '';
  throw new FailedPreconditionError(
    `criu at ${criu.path} is version ${criu.version}, which cannot dump TCP sockets on kernel ${release} ` +
    `(kernels from ${TCP_DUMP_KERNEL} on need CRIU ${TCP_DUMP_MIN_CRIU.replace(/\.0$/, '')} or newer; older ones fail with ` +
    `"sockets: Can't get 1:16 opt: Operation not supported"), and the container holds one: ` +
    `${s.family} port ${s.localPort} ${s.state} (pid ${s.pid} fd ${s.fd})${more}. ` +
    `Install CRIU ${TCP_DUMP_MIN_CRIU.replace(/\.0$/, '')} or newer (contrib/setup.sh provides it) or point criu_path at one`);
}
