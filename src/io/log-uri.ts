// Which IO a process's stdout names, as containerd-shim-runc-v2's createIO decides it: a plain
// path (no scheme) or `fifo://` is containerd's FIFO (pipes copied by the shim), `binary://` a
// logging binary, `file://` a log file; any other scheme is refused.
import { InvalidArgumentError } from '../errors';
import { BinaryIO } from './binary-io';
import { FileIO } from './file-io';
import type { ProcessIO } from './process-io';

export interface LogUriContext {
  containerId: string;
  namespace: string;
  owner?: { uid: number; gid: number };
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/** The stdout URI when it names a log binary or file; null for containerd's FIFOs. */
export function logUri(stdout: string): URL | null {
  const m = SCHEME.exec(stdout);
  if (!m || m[1]!.toLowerCase() === 'fifo') return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'binary' && scheme !== 'file') throw new InvalidArgumentError(`unknown STDIO scheme ${m[1]}`);
  try {
    return new URL(stdout);
  } catch {
    throw new InvalidArgumentError(`unable to parse stdout uri: ${JSON.stringify(stdout)}`);
  }
}

/** Creates the IO for a `binary://` or `file://` stdout, or returns null if stdout is a FIFO. */
export function createLogUriIO(stdout: string, ctx: LogUriContext): ProcessIO | null {
  const uri = logUri(stdout);
  if (!uri) return null;
  if (uri.protocol === 'binary:') return BinaryIO.create(uri, ctx.containerId, ctx.namespace, ctx.owner);
  return FileIO.create(uri, ctx.owner);
}
