// containerd's rule for container and exec ids (pkg/identifiers): ferry names files after exec
// ids (`<bundle>/<exec id>.pid`, as the Go shim does), so an id reaching the shim by another
// client than containerd is checked against the same rule before it becomes part of a path.
import { InvalidArgumentError } from '../errors';

const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_LENGTH = 76;

export function assertIdentifier(id: string): void {
  if (id.length > MAX_LENGTH) throw new InvalidArgumentError(`identifier ${JSON.stringify(id)} greater than maximum length (${MAX_LENGTH} characters)`);
  if (!IDENTIFIER.test(id)) throw new InvalidArgumentError(`identifier ${JSON.stringify(id)} must match ${IDENTIFIER.source}`);
}
