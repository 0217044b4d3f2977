// Bounds on `runc restore`. CRIU can loop forever on a damaged image (CRIU 4.x with a truncated
// pages file: "Advanced iov 0 bytes", its restore.log growing by tens of MB a second), and then
// neither runc nor containerd ever answers StartContainer. So a restore gets a time limit; when
// it passes, runc and every process under it are killed (Runc.run) and what they mounted for
// the restore is unmounted here: runc's `criu-root` bind of the rootfs in its state dir, and
// CRIU's cgroup yard (`.criu.cgyard.*`) in its work dir. Only paths of this one container are
// touched.
import * as path from 'node:path';
import { mountPointsUnder, unmountAll } from '../sys/mounts';

/** Environment variable (seconds) that sets the time limit; containerd passes its environment on to shims. */
export const RESTORE_TIMEOUT_ENV = 'FERRY_RESTORE_TIMEOUT_SECONDS';
/** Default: long enough for a restore of many GiB on a slow disk, short of forever. */
export const DEFAULT_RESTORE_TIMEOUT_SECONDS = 600;

/** The restore time limit in ms (FERRY_RESTORE_TIMEOUT_SECONDS, else the default; invalid values fall back too). */
export function restoreTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env[RESTORE_TIMEOUT_ENV]);
  return (Number.isFinite(v) && v > 0 ? v : DEFAULT_RESTORE_TIMEOUT_SECONDS) * 1000;
}

export { mountPointsUnder } from '../sys/mounts';

/**
 * Unmounts (lazily) whatever a cut-off restore left mounted under these directories, deepest
 * first; returns what was unmounted. Errors are collected, not thrown: this runs on the way out
 * of a failure whose own error is the one to report.
 */
export function unmountRestoreLeftovers(dirs: string[]): { unmounted: string[]; errors: string[] } {
  const unmounted: string[] = [];
  const errors: string[] = [];
  for (const dir of dirs) {
    for (const mp of mountPointsUnder(dir)) {
      try {
        unmountAll(mp);
        unmounted.push(mp);
      } catch (err) {
        errors.push(`${mp}: ${(err as Error).message}`);
      }
    }
  }
  return { unmounted, errors };
}
