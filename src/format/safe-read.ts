// Reads files back from checkpoint content (container.log, spec.dump, config.dump, ...).
// The content is untrusted: a symlink in place of spec.dump could make us read any host file
// (and echo it in an error), and a FIFO would block the open forever. So every component is
// lstat()ed, and the file opened as open-regular.ts opens untrusted files.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../errors';
import { fileTypeName } from './file-type';
import { lstatIfPresent, openRegularFile, readFdInto } from './open-regular';

export interface SafeReadOptions {
  /** Refuse files larger than this. Default 64 MiB. */
  maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

function checkName(name: string): string[] {
  const parts = name.split('/');
  const bad =
    name === '' ||
    name.includes('\0') ||
    name.startsWith('/') ||
    parts.some((c) => c === '' || c === '.' || c === '..');
  if (bad) {
    throw new InvalidArgumentError(
      `checkpoint file name ${JSON.stringify(name)} must be a relative path without empty, "." or ".." components`,
    );
  }
  return parts;
}

function lstatOrNotFound(p: string, what: string): fs.Stats {
  const st = lstatIfPresent(p);
  if (!st) throw new NotFoundError(`${what} does not exist`);
  return st;
}

/**
 * Reads `name` (relative to the checkpoint directory `dir`) without following symlinks at any
 * component and without ever blocking. Errors: NotFoundError if missing; InvalidArgumentError
 * for a bad name, a non-regular file (symlink, FIFO, ...), a file with several hard links, a
 * file swapped between checks, or one larger than maxBytes. The checks are synchronous calls
 * (open-regular.ts says why).
 */
export async function readCheckpointFile(dir: string, name: string, opts: SafeReadOptions = {}): Promise<Buffer> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const parts = checkName(name);
  const top = lstatOrNotFound(dir, `checkpoint directory ${dir}`);
  if (!top.isDirectory()) throw new InvalidArgumentError(`checkpoint directory ${dir} is a ${fileTypeName(top)}, not a directory`);

  // Every intermediate component must be a real directory.
  let p = dir;
  for (let i = 0; i < parts.length - 1; i++) {
    p = path.join(p, parts[i]);
    const st = lstatOrNotFound(p, `checkpoint file ${name} in ${dir}`);
    if (!st.isDirectory()) {
      throw new InvalidArgumentError(`checkpoint file ${name} in ${dir}: ${parts.slice(0, i + 1).join('/')} is a ${fileTypeName(st)}, not a directory`);
    }
  }
  const where = `checkpoint file ${name} in ${dir}`;
  const { fd, st } = openRegularFile(path.join(dir, ...parts), where);
  try {
    // A hard link can make a "regular file" in the checkpoint be a host file such as /etc/shadow.
    if (st.nlink > 1) throw new InvalidArgumentError(`${where} has ${st.nlink} hard links; refusing to read it`);
    if (st.size > maxBytes) throw new InvalidArgumentError(`${where} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
    // Read until EOF but never past maxBytes+1, so a file growing after fstat is still caught.
    let buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let len = 0;
    for (;;) {
      if (len === buf.length) {
        const bigger = Buffer.alloc(Math.min(buf.length * 2, maxBytes + 1));
        buf.copy(bigger);
        buf = bigger;
      }
      const bytesRead = await readFdInto(fd, buf, len, buf.length - len, null);
      len += bytesRead;
      if (len > maxBytes) throw new InvalidArgumentError(`${where} grew over the ${maxBytes}-byte limit while being read`);
      if (len < buf.length) break; // readFdInto stops short only at EOF
    }
    return buf.subarray(0, len);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * readCheckpointFile + JSON.parse. The parse error is NOT quoted: V8's messages include a
 * snippet of the input, and the input is untrusted content that must not be echoed to callers.
 */
export async function readCheckpointJson<T = unknown>(dir: string, name: string, opts: SafeReadOptions = {}): Promise<T> {
  const data = await readCheckpointFile(dir, name, opts);
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch {
    throw new InvalidArgumentError(`checkpoint file ${name} in ${dir} is not valid JSON`);
  }
}
