import { Code, FerryError } from '../errors';

/**
 * A failed runc command. Carries runc's own message; the code is Unknown, as the Go shim's
 * plain errors map to, so containerd and its users see the same text and code.
 */
export class RuntimeError extends FerryError {
  constructor(message: string, readonly runcMessage?: string) {
    super(Code.Unknown, message);
  }
}
