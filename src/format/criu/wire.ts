// The top-level field numbers of one protobuf payload, read without decoding it. ts-proto does
// not check proto2's `required` (a missing required field silently reads as 0), and CRIU's images
// are proto2: this scan lets the decoder refuse an entry that lacks a required field, as CRIU's
// own protobuf-c unpacking does. It also refuses malformed wire data (bad wire type, a length
// running past the payload) before anything is allocated for it.

export class WireError extends Error {
  constructor(message: string, readonly at: number) {
    super(message);
  }
}

function varint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new WireError('varint runs past the end of the entry', pos);
    const b = buf[pos++];
    // Only lengths and tags are kept as numbers; beyond 2^53 they are out of any bound anyway.
    if (scale < 2 ** 53) value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, pos];
  }
  throw new WireError('varint longer than 10 bytes', pos);
}

/** Field numbers present at the top level of `payload`. Throws WireError for malformed wire data. */
export function topLevelFields(payload: Uint8Array): Set<number> {
  const seen = new Set<number>();
  let pos = 0;
  while (pos < payload.length) {
    const start = pos;
    const [tag, afterTag] = varint(payload, pos);
    pos = afterTag;
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field === 0) throw new WireError('field number 0', start);
    switch (wireType) {
      case 0: pos = varint(payload, pos)[1]; break;
      case 1: pos += 8; break;
      case 2: {
        const [len, afterLen] = varint(payload, pos);
        pos = afterLen + len;
        break;
      }
      case 5: pos += 4; break;
      // Groups (3, 4) are not used by any CRIU image; 6 and 7 do not exist.
      default: throw new WireError(`wire type ${wireType} of field ${field}`, start);
    }
    if (pos > payload.length) throw new WireError(`field ${field} runs past the end of the entry`, start);
    seen.add(field);
  }
  return seen;
}
