// A CLI error is one line on stderr that says what failed and why: "ferry <command>: <why>".
// gRPC errors from containerd carry their status in front of containerd's own message
// ("5 NOT_FOUND: container "x" in namespace "default": not found"): the status word is dropped,
// containerd's words are kept. Multi-line messages (a runc or CRIU log) are folded into one line.
import { FerryError } from '../errors';

const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such socket (is containerd running? see -a/--address)',
  ECONNREFUSED: 'connection refused (is containerd running?)',
  EACCES: 'permission denied (containerd\'s socket is root-only)',
};

interface GrpcLikeError { code?: unknown; details?: unknown; message?: unknown }

function isGrpcError(err: unknown): err is GrpcLikeError & { details: string } {
  return typeof err === 'object' && err !== null && typeof (err as GrpcLikeError).details === 'string' &&
    typeof (err as GrpcLikeError).code === 'number';
}

/** The reason text of any thrown value, without gRPC's status prefix. */
export function errorReason(err: unknown): string {
  if (err instanceof FerryError) return err.message;
  if (isGrpcError(err)) {
    if (err.code === 14 /* UNAVAILABLE */) {
      // grpc-js: "No connection established. Last error: Error: connect ENOENT /path. Resolution note: "
      const m = /connect (E[A-Z]+) (\S+?)\.?(?:\s|$)/.exec(err.details);
      if (m) return `cannot reach containerd at ${m[2]}: ${ERRNO_WORDS[m[1]!] ?? m[1]}`;
      return `cannot reach containerd: ${err.details}`;
    }
    return err.details;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function formatCliError(err: unknown, command: string): string {
  const reason = errorReason(err).replace(/\s*\n\s*/g, '; ').trim();
  return `ferry${command ? ` ${command}` : ''}: ${reason}`;
}
