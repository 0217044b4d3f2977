// Every Task request is checked before the task service acts on it (issue 12, point 9). The
// socket is root's only, and containerd checks what it sends, but a shim runs containers as root
// and whatever reaches it must not make it write outside a bundle, open what is not a FIFO, or
// pass a number the kernel would misread. The rules are containerd's own where it has them:
//   - ids (container and exec) as containerd's identifiers.Validate: [A-Za-z0-9]+ joined by
//     single `.`, `_` or `-`, at most 76 characters — so an id is always one safe path component;
//   - a bundle is what containerd's runtime makes: <state>/<namespace>/<id>, a real directory
//     beside the one the daemon was started in (NewBundle: filepath.Join(state, ns, id));
//   - stdio: empty, a log URI (binary://, file://; src/io/log-uri.ts), or an absolute path
//     (fifo:// allowed) naming an existing FIFO — not a symlink, not a regular file or device;
//   - an exec's process spec is an OCI process: a JSON object with a non-empty `args` of strings;
//   - signals are 1..64 (SIGRTMAX), terminal sizes fit the kernel's 16-bit winsize;
//   - paths containerd gives (checkpoint, image and work paths) are absolute.
// Refusals are InvalidArgument (what containerd's errdefs.ErrInvalidArgument maps to), with the
// field named and its value quoted, shortened and escaped (a NUL or 10,000 bytes stay readable).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as shim from '../../api/gen/containerd/task/v2/shim';
import { InvalidArgumentError } from '../errors';

export const MAX_ID_LENGTH = 76;
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
/** SIGRTMAX on Linux. */
export const MAX_SIGNAL = 64;
const MAX_WINSIZE = 0xffff;
const URI_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/** A value for an error message: JSON-quoted (NUL and control characters escaped), shortened past `max`. */
export function quoted(value: string, max = 256): string {
  return value.length > max ? `${JSON.stringify(`${value.slice(0, max)}…`)} (${value.length} characters)` : JSON.stringify(value);
}

export function checkId(field: string, id: string): void {
  if (id === '') throw new InvalidArgumentError(`${field} must not be empty`);
  if (id.length > MAX_ID_LENGTH) throw new InvalidArgumentError(`${field} ${quoted(id, 80)} is longer than ${MAX_ID_LENGTH} characters`);
  if (!IDENTIFIER.test(id)) throw new InvalidArgumentError(`${field} ${quoted(id, 80)} must be letters and digits joined by single '.', '_' or '-'`);
}

function checkOptionalId(field: string, id: string): void {
  if (id !== '') checkId(field, id);
}

export function checkAbsolute(field: string, p: string): void {
  if (p.includes('\0') || !path.isAbsolute(p) || path.normalize(p) !== p) {
    throw new InvalidArgumentError(`${field} ${quoted(p)} must be an absolute, normalised path`);
  }
}

/** Bundles must sit beside the one the daemon started in: <state>/<namespace>/<id>. */
export async function checkBundle(bundle: string, id: string, bundleParent: string | undefined): Promise<void> {
  checkAbsolute('bundle', bundle);
  if (path.basename(bundle) !== id) throw new InvalidArgumentError(`bundle ${quoted(bundle)} is not named after container ${quoted(id)}`);
  if (bundleParent !== undefined && path.dirname(bundle) !== bundleParent) {
    throw new InvalidArgumentError(`bundle ${quoted(bundle)} is not in containerd's state directory ${quoted(bundleParent)}`);
  }
  let st;
  try {
    st = fs.lstatSync(bundle);
  } catch {
    throw new InvalidArgumentError(`bundle ${quoted(bundle)} does not exist`);
  }
  if (!st.isDirectory()) throw new InvalidArgumentError(`bundle ${quoted(bundle)} is not a directory${st.isSymbolicLink() ? ' (a symlink)' : ''}`);
}

/** stdio: empty, a log URI, or an existing FIFO (fifo:// or a plain absolute path). */
export async function checkStdio(field: string, value: string, logUriAllowed: boolean): Promise<void> {
  if (value === '') return;
  const scheme = URI_SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme && scheme !== 'fifo') {
    if (logUriAllowed && (scheme === 'binary' || scheme === 'file')) return;
    throw new InvalidArgumentError(`${field} ${quoted(value)}: unknown STDIO scheme ${scheme}`);
  }
  const p = scheme ? value.slice('fifo://'.length) : value;
  checkAbsolute(field, p);
  let st;
  try {
    // lstatSync: one syscall on the main thread instead of a threadpool round trip; Create and
    // Exec check three paths each, in series, before anything else happens.
    st = fs.lstatSync(p);
  } catch {
    throw new InvalidArgumentError(`${field} ${quoted(p)} does not exist`);
  }
  if (!st.isFIFO()) {
    const what = st.isSymbolicLink() ? 'a symlink' : st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : 'not a FIFO';
    throw new InvalidArgumentError(`${field} ${quoted(p)} is ${what}; stdio must be a FIFO`);
  }
}

/** An exec's process spec: OCI process JSON with a non-empty `args` of strings. */
export function checkProcessSpec(bytes: Uint8Array): void {
  let spec: unknown;
  try {
    spec = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    // No parser message: it would quote the input.
    throw new InvalidArgumentError(`exec process spec (${bytes.length} bytes) is not JSON`);
  }
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw new InvalidArgumentError('exec process spec is not a JSON object');
  const args = (spec as { args?: unknown }).args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    throw new InvalidArgumentError('exec process spec has no args (a non-empty list of strings)');
  }
}

export function checkSignal(signal: number): void {
  if (!Number.isInteger(signal) || signal < 1 || signal > MAX_SIGNAL) throw new InvalidArgumentError(`signal ${signal} is not a signal (1..${MAX_SIGNAL})`);
}

/** Checks per Task method, run on the decoded request before the task service sees it. */
export function requestChecks(bundleParent?: string): Record<string, (r: never) => void | Promise<void>> {
  const idOnly = (r: { id: string }) => checkId('container id', r.id);
  const withExec = (r: { id: string; execId: string }) => { checkId('container id', r.id); checkOptionalId('exec id', r.execId); };
  return {
    Create: async (r: shim.CreateTaskRequest) => {
      checkId('container id', r.id);
      await checkBundle(r.bundle, r.id, bundleParent);
      await checkStdio('stdin', r.stdin, false);
      await checkStdio('stdout', r.stdout, true);
      await checkStdio('stderr', r.stderr, true);
      if (r.checkpoint) checkAbsolute('checkpoint', r.checkpoint);
      if (r.parentCheckpoint) checkAbsolute('parent checkpoint', r.parentCheckpoint);
    },
    Exec: async (r: shim.ExecProcessRequest) => {
      checkId('container id', r.id);
      checkId('exec id', r.execId);
      await checkStdio('stdin', r.stdin, false);
      await checkStdio('stdout', r.stdout, true);
      await checkStdio('stderr', r.stderr, true);
      if (r.spec) checkProcessSpec(r.spec.value);
    },
    Kill: (r: shim.KillRequest) => { withExec(r); checkSignal(r.signal); },
    ResizePty: (r: shim.ResizePtyRequest) => {
      withExec(r);
      if (r.width > MAX_WINSIZE || r.height > MAX_WINSIZE) throw new InvalidArgumentError(`terminal size ${r.width}x${r.height} is larger than ${MAX_WINSIZE}x${MAX_WINSIZE}`);
    },
    Checkpoint: (r: shim.CheckpointTaskRequest) => { idOnly(r); if (r.path) checkAbsolute('checkpoint path', r.path); },
    State: withExec, Start: withExec, Delete: withExec, CloseIO: withExec, Wait: withExec,
    Pids: idOnly, Pause: idOnly, Resume: idOnly, Update: idOnly, Stats: idOnly, Connect: idOnly, Shutdown: idOnly,
  } as unknown as Record<string, (r: never) => void | Promise<void>>;
}
