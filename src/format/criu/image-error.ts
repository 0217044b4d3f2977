import { InvalidArgumentError } from '../../errors';

/**
 * A CRIU image that cannot be decoded: truncated, an entry longer than its file, a wrong magic,
 * a protobuf payload that does not parse. The message names the file and the byte offset, so a
 * person can look at the exact place (`xxd -s OFFSET FILE`).
 */
export class CriuImageError extends InvalidArgumentError {
  constructor(readonly file: string, readonly offset: number, problem: string) {
    super(`CRIU image ${file}: ${problem} at offset ${offset}`);
  }
}
