// After `runc create` or `runc restore` failed — runc killed in the middle included — nothing of
// the container may stay in runc's state. `runc delete --force` removes a container runc knows
// (its state.json was written). A runc killed before that leaves its state directory behind; a
// killed `runc restore` also leaves the container's rootfs bind-mounted on the host at
// <state>/criu-root (runc unmounts it in a deferred call that never ran). The order matters:
// for a state dir without state.json, `runc delete --force` does os.RemoveAll of the whole dir,
// and through that bind mount it deletes the container's root filesystem — every file of the
// snapshot's upper layer, lower ones whited out (found by test/e2e/runc-faults.test.ts). So the
// mounts go first, then runc delete, then whatever runc left.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { InternalError } from '../errors';
import { mountPointsUnder, unmountAll } from '../sys/mounts';
import type { Runc } from './runc';

/** Unmounts what a dead runc left mounted in its state dir for `id`; returns the mount points. */
export function unmountRuncLeftovers(runcRoot: string, id: string): string[] {
  const dir = stateDir(runcRoot, id);
  if (!dir) return [];
  const points = mountPointsUnder(dir); // deepest first
  for (const point of points) unmountAll(point);
  return points;
}

/** Removes container `id` from runc's state, however far runc got; returns what was cleaned. */
export async function removeHalfCreated(runc: Runc, id: string): Promise<string[]> {
  const cleaned = unmountRuncLeftovers(runc.config.root, id).map((p) => `unmounted ${p}`);
  try {
    await runc.delete(id, true);
    cleaned.push('runc delete --force');
  } catch { /* unknown to runc and nothing to remove */ }
  const dir = stateDir(runc.config.root, id);
  if (!dir) return cleaned;
  try {
    await fsp.lstat(dir);
  } catch {
    return cleaned;
  }
  const still = mountPointsUnder(dir);
  if (still.length) throw new InternalError(`runc state dir ${dir} still has mounts (${still.join(', ')}); not removing it`);
  await fsp.rm(dir, { recursive: true, force: true });
  cleaned.push(`removed ${dir}`);
  return cleaned;
}

/** runc's state dir of `id`, or undefined when the id would name anything else. */
function stateDir(runcRoot: string, id: string): string | undefined {
  const root = path.resolve(runcRoot);
  const dir = path.join(root, id);
  return id && path.dirname(dir) === root ? dir : undefined;
}
