// ttrpc message framing (ttrpc PROTOCOL.md, "Message Frame"): a 10-byte header —
// data length (u32 BE), stream id (u32 BE), message type (u8), flags (u8) — then the data.

export const HEADER_LENGTH = 10;
/** Largest data length either side may send; larger frames are refused (Go: messageLengthMax). */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export enum MessageType {
  Request = 1,
  Response = 2,
  Data = 3,
}

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

/**
 * What the decoder yields: a whole frame, or notice of a frame whose announced length was over
 * the limit. Like Go ttrpc, the oversized frame's data is skipped (never buffered) and the peer
 * is answered on that stream id, so one bad message does not cost the whole connection.
 */
export type Decoded =
  | ({ kind: 'frame' } & Frame)
  /** An oversized frame's header has arrived; its data is being skipped (a reader may give up instead). */
  | { kind: 'announced'; streamId: number; length: number }
  | { kind: 'oversized'; streamId: number; length: number };

export function encodeFrame(streamId: number, type: MessageType, flags: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_MESSAGE_LENGTH) {
    throw new RangeError(oversizedMessage(payload.length));
  }
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeUInt32BE(streamId >>> 0, 4);
  frame.writeUInt8(type, 8);
  frame.writeUInt8(flags, 9);
  frame.set(payload, HEADER_LENGTH);
  return frame;
}

/** The message Go ttrpc uses for ResourceExhausted on oversized messages. */
export function oversizedMessage(length: number): string {
  return `message length ${length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`;
}

/**
 * Incremental decoder: feed it socket chunks as they come (split or coalesced anywhere) and it
 * returns the frames completed so far. Chunks are kept as a list and joined once per frame, so a
 * 4 MiB message arriving in 64 KiB reads is copied once, not once per read.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header?: { length: number; streamId: number; type: number; flags: number };
  /** Bytes of an oversized frame still to skip, and the frame being skipped. */
  private discarding = 0;
  private oversized?: { streamId: number; length: number };

  /** Bytes of an unfinished frame received so far (0 between frames). */
  get pendingBytes(): number {
    return this.buffered + (this.header ? HEADER_LENGTH : 0);
  }

  push(chunk: Buffer): Decoded[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Decoded[] = [];
    for (;;) {
      if (this.oversized) {
        const n = Math.min(this.discarding, this.buffered);
        this.skip(n);
        this.discarding -= n;
        if (this.discarding > 0) break;
        out.push({ kind: 'oversized', ...this.oversized });
        this.oversized = undefined;
      }
      if (!this.header) {
        if (this.buffered < HEADER_LENGTH) break;
        const h = this.consume(HEADER_LENGTH);
        const header = { length: h.readUInt32BE(0), streamId: h.readUInt32BE(4), type: h[8], flags: h[9] };
        if (header.length > MAX_MESSAGE_LENGTH) {
          out.push({ kind: 'announced', streamId: header.streamId, length: header.length });
          this.oversized = { streamId: header.streamId, length: header.length };
          this.discarding = header.length;
          continue;
        }
        this.header = header;
      }
      if (this.buffered < this.header.length) break;
      const { streamId, type, flags, length } = this.header;
      this.header = undefined;
      out.push({ kind: 'frame', streamId, type, flags, payload: this.consume(length) });
    }
    return out;
  }

  /** Drops the first n buffered bytes (n <= buffered) without copying them. */
  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0];
      if (c.length <= n) {
        this.chunks.shift();
        n -= c.length;
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  /** Removes and returns the first n buffered bytes (n <= buffered). */
  private consume(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const take = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, take);
      filled += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    return out;
  }
}
