// Opens a file of untrusted checkpoint content for reading, by the rule every reader of it
// follows: lstat first (it must be a regular file), open with O_NOFOLLOW|O_NONBLOCK (a symlink
// swapped in fails with ELOOP, a FIFO swapped in does not block the open), then fstat the fd and
// require the very file that was lstat()ed.
//
// Synchronous on purpose: a restore checks a few dozen small files (CRIU image heads, spec.dump)
// before `runc restore` can start, and each asynchronous call is a threadpool round trip of
// ~0.1-0.2 ms while the event loop waits; five of them per file put ~15-20 ms on the restore's
// critical path (docs/benchmarks.md, Round 5). These calls take microseconds each.
import * as fs from 'node:fs';
import { InvalidArgumentError, NotFoundError } from '../errors';
import { fileTypeName } from './file-type';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** lstat that says undefined for a name that is not there (ENOENT, or a parent that is not a directory). */
export function lstatIfPresent(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export interface OpenedRegularFile {
  fd: number;
  /** fstat of the open descriptor. */
  st: fs.Stats;
}

/**
 * Opens `file` (named `where` in errors) as described above. NotFoundError when it is absent;
 * InvalidArgumentError when it is not a regular file, or was replaced while being opened.
 * The caller closes `fd`.
 */
export function openRegularFile(file: string, where: string): OpenedRegularFile {
  const before = lstatIfPresent(file);
  if (!before) throw new NotFoundError(`${where} does not exist`);
  if (!before.isFile()) throw new InvalidArgumentError(`${where} is a ${fileTypeName(before)}, not a regular file; refusing it`);
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`${where} does not exist`);
    if (code === 'ELOOP') throw new InvalidArgumentError(`${where} became a symlink; refusing to follow it`);
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.ino !== before.ino || st.dev !== before.dev) {
      throw new InvalidArgumentError(`${where} was replaced while being opened; refusing it`);
    }
    return { fd, st };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** How much is read synchronously before the event loop gets a turn (a large file, e.g. a log). */
const SYNC_SLICE_BYTES = 1024 * 1024;

/** Yields to the event loop (other containers' calls in a grouped daemon) between large slices. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Reads `len` bytes at `pos` of `fd` into `buf` at `off`, stopping early at EOF; returns the
 * bytes read. Synchronous slices of at most SYNC_SLICE_BYTES, with a turn of the event loop
 * between slices.
 */
export async function readFdInto(fd: number, buf: Buffer, off: number, len: number, pos: number | null): Promise<number> {
  let done = 0;
  while (done < len) {
    if (done > 0) await turn();
    const want = Math.min(len - done, SYNC_SLICE_BYTES);
    let got = 0;
    while (got < want) {
      const n = fs.readSync(fd, buf, off + done + got, want - got, pos === null ? null : pos + done + got);
      if (n === 0) return done + got;
      got += n;
    }
    done += got;
  }
  return done;
}
