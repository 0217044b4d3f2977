// What a daemon leaves in a container's bundle once its Delete has cleaned that bundle, so that
// the shim's `delete` action can answer without starting node.
//
// containerd (1.7 and 2.x, cleanupAfterDeadShim) runs `<shim> -id ID -bundle B delete` after
// EVERY disconnect of a task's shim connection — after each ordinary Delete + Shutdown too — and
// waits for it before `ctr run --rm` / `ctr task rm` return. It parses stdout as a
// DeleteResponse and uses it only when the task is still in its task list, i.e. when the
// daemon died before answering Delete. After a daemon's own Delete (runc delete done, rootfs
// unmounted) the action has nothing left to clean, yet a node start costs ~35 ms of CPU.
//
// So the daemon writes `<bundle>/ferry-cleaned`, one line the launcher
// (shim/containerd-shim-ferry-v2) reads with the shell's builtins only:
//
//     <response> <daemon pid> <socket path>
//
// <response> is the DeleteResponse the Go shim's `delete` prints (init pid, exit status 137,
// exited_at — here the time the daemon cleaned up) with every byte written as a `\ooo` octal
// escape, which `printf` turns back into the bytes. The launcher prints it and exits when the
// daemon's socket is gone (it exited and unlinked it) or the daemon is still alive (it serves
// other containers of its group). A socket left by a dead daemon, a missing or unreadable
// record (the daemon was killed before or during its Delete): node runs the full `delete`
// (src/shim-actions/delete.ts), exactly as before.
//
// The bundle is made anew by containerd for every task (os.Mkdir fails on an existing one), so
// a record can never be read for another task than the one it was written for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeleteResponse } from '../../api/gen/containerd/task/v2/shim';
import { toTimestamp } from '../service/timestamps';

/** The record's name in the bundle; the launcher spells it too. */
export const CLEANED_RECORD = 'ferry-cleaned';

/** The Go shim's `delete` always reports 128 + SIGKILL. */
export const DELETE_EXIT_STATUS = 128 + 9;

/** The DeleteResponse the `delete` action prints for a bundle whose init had this pid. */
export function deleteActionResponse(initPid: number, at: Date = new Date()): Uint8Array {
  return DeleteResponse.encode({ pid: initPid, exitStatus: DELETE_EXIT_STATUS, exitedAt: toTimestamp(at) }).finish();
}

/** Every byte as a 3-digit octal escape: what the shell's printf format turns back into bytes. */
export function octalEscaped(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += `\\${b.toString(8).padStart(3, '0')}`;
  return s;
}

export function cleanedRecordLine(response: Uint8Array, daemonPid: number, socketPath: string): string {
  if (/\s/.test(socketPath)) throw new Error(`socket path ${JSON.stringify(socketPath)} contains white space`);
  return `${octalEscaped(response)} ${daemonPid} ${socketPath}\n`;
}

/**
 * Writes the record (to a temporary name, then renamed: the launcher never reads half of one).
 * Best effort: without it `delete` only takes the slow path.
 */
export function writeCleanedRecord(bundle: string, initPid: number, socketPath: string): void {
  const file = path.join(bundle, CLEANED_RECORD);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, cleanedRecordLine(deleteActionResponse(initPid), process.pid, socketPath));
  fs.renameSync(tmp, file);
}
