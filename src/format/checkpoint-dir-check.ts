// Checks an unpacked checkpoint directory (what containerd passes to Create after unpacking the
// checkpoint image) before CRIU reads it. CRIU opens image files by name inside the directory;
// a symlink there would make it read (or, for some images, write) wherever the link points,
// and a FIFO would block it. Only regular files and directories are allowed, and a regular
// file with more than one link is refused too: a hard link is how a checkpoint could point a
// "regular file" at a host file such as /etc/shadow.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../errors';
import { fileTypeName } from './file-type';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Entries checked between two turns of the event loop. */
const WALK_SLICE = 512;

/**
 * A directory entry's name, refused unless it is valid UTF-8. Names are bytes: read as strings
 * (readdir's default) every invalid sequence becomes U+FFFD, so a symlink named `a\xff` and a
 * regular file named `a\u{fffd}` would both be lstat()ed as the regular file, and the symlink
 * (or a whole directory of them) never checked. CRIU's image names are ASCII.
 */
function utf8Name(dir: string, rel: string, raw: Buffer): string {
  try {
    return strictUtf8.decode(raw);
  } catch {
    const shown = [...raw].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x5c && b !== 0x22 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
    throw new InvalidArgumentError(`checkpoint directory ${dir}: name "${rel === '' ? '' : `${rel}/`}${shown}" is not valid UTF-8; refusing it`);
  }
}

/**
 * Walks `dir` with lstat (never following anything) and throws InvalidArgumentError naming the
 * first offending path (relative to `dir`, in sorted walk order) and its type. The top directory
 * itself must be a real directory, not a symlink to one.
 */
export async function assertOnlyRegularFilesAndDirs(dir: string): Promise<void> {
  let top: fs.Stats;
  try {
    top = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`checkpoint directory ${dir} does not exist`);
    throw err;
  }
  if (!top.isDirectory()) {
    throw new InvalidArgumentError(`checkpoint directory ${dir} is a ${fileTypeName(top)}, not a directory`);
  }
  // Each directory's entries in sorted order, then its subdirectories: a deterministic "first offender" in messages and tests.
  // Synchronous calls (each takes microseconds; an await per entry was a threadpool round trip on
  // the restore's critical path: format/open-regular.ts), with a turn of the event loop every
  // WALK_SLICE entries so that a huge directory does not hold up a grouped daemon's other calls.
  const pending: string[] = [''];
  let sinceTurn = 0;
  while (pending.length > 0) {
    const rel = pending.pop() as string;
    const names = fs.readdirSync(path.join(dir, rel), { encoding: 'buffer' }).map((raw) => utf8Name(dir, rel, raw)).sort();
    const subdirs: string[] = [];
    for (const name of names) {
      if (++sinceTurn >= WALK_SLICE) {
        sinceTurn = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(path.join(dir, childRel));
      if (st.isDirectory()) {
        subdirs.push(childRel);
      } else if (st.isFile()) {
        if (st.nlink > 1) {
          throw new InvalidArgumentError(
            `checkpoint directory ${dir}: ${childRel} is a regular file with ${st.nlink} hard links; refusing it`,
          );
        }
      } else {
        throw new InvalidArgumentError(
          `checkpoint directory ${dir}: ${childRel} is a ${fileTypeName(st)}; only regular files and directories are allowed`,
        );
      }
    }
    // Stack: push in reverse so subdirectories are visited in sorted order.
    pending.push(...subdirs.reverse());
  }
}
