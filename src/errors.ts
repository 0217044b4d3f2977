// Typed errors and their one mapping to gRPC/ttrpc status codes.
// containerd converts the status code of a shim reply with errdefs.FromGRPC, and relies on
// NotFound / AlreadyExists / FailedPrecondition to decide what to do next (e.g. a Delete that
// answers NotFound is treated as already gone). Everything the shim throws across the protocol
// boundary goes through toStatus() below, so the mapping lives in exactly one place.

/** gRPC status codes (google.rpc.Code); ttrpc uses the same numbers. */
export enum Code {
  OK = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

export class FerryError extends Error {
  constructor(readonly code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class NotFoundError extends FerryError {
  constructor(message: string) { super(Code.NotFound, message); }
}
export class AlreadyExistsError extends FerryError {
  constructor(message: string) { super(Code.AlreadyExists, message); }
}
export class FailedPreconditionError extends FerryError {
  constructor(message: string) { super(Code.FailedPrecondition, message); }
}
export class InvalidArgumentError extends FerryError {
  constructor(message: string) { super(Code.InvalidArgument, message); }
}
export class UnimplementedError extends FerryError {
  constructor(message: string) { super(Code.Unimplemented, message); }
}
export class InternalError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) { super(Code.Internal, message, options); }
}
export class UnavailableError extends FerryError {
  constructor(message: string) { super(Code.Unavailable, message); }
}

export interface Status { code: Code; message: string }

/** The single place where any thrown value becomes a wire status. */
export function toStatus(err: unknown): Status {
  if (err instanceof FerryError) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') return { code: Code.NotFound, message: err.message };
    if (errno === 'EEXIST') return { code: Code.AlreadyExists, message: err.message };
    return { code: Code.Unknown, message: err.message };
  }
  return { code: Code.Unknown, message: String(err) };
}
