import { encodeFrame, FrameDecoder, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, type Decoded } from '../../src/protocol/ttrpc/frame';

const frames = () => [
  encodeFrame(1, MessageType.Request, 0, Buffer.from('hello')),
  encodeFrame(3, MessageType.Request, 0, Buffer.alloc(0)),
  encodeFrame(0xfffffffd, MessageType.Data, 0x5, Buffer.from('second payload, a bit longer')),
];

function expectThreeFrames(out: Decoded[]) {
  expect(out).toEqual([
    { kind: 'frame', streamId: 1, type: 1, flags: 0, payload: Buffer.from('hello') },
    { kind: 'frame', streamId: 3, type: 1, flags: 0, payload: Buffer.alloc(0) },
    { kind: 'frame', streamId: 0xfffffffd, type: 3, flags: 5, payload: Buffer.from('second payload, a bit longer') },
  ]);
}

describe('ttrpc frame encoding', () => {
  test('header is length BE, stream id BE, type, flags', () => {
    const f = encodeFrame(0x01020304, MessageType.Response, 0x07, Buffer.from([0xaa, 0xbb]));
    expect([...f]).toEqual([0, 0, 0, 2, 1, 2, 3, 4, 2, 7, 0xaa, 0xbb]);
    expect(f.length).toBe(HEADER_LENGTH + 2);
  });

  test('refuses payloads over 4 MiB, accepts exactly 4 MiB', () => {
    expect(() => encodeFrame(1, MessageType.Request, 0, Buffer.alloc(MAX_MESSAGE_LENGTH + 1))).toThrow(/exceed maximum message size of 4194304/);
    expect(encodeFrame(1, MessageType.Request, 0, Buffer.alloc(MAX_MESSAGE_LENGTH)).readUInt32BE(0)).toBe(MAX_MESSAGE_LENGTH);
  });
});

describe('FrameDecoder', () => {
  const stream = Buffer.concat(frames());

  test('decodes coalesced frames from one chunk', () => {
    const d = new FrameDecoder();
    expectThreeFrames(d.push(stream));
    expect(d.pendingBytes).toBe(0);
  });

  test('data split at every byte boundary gives the same frames', () => {
    for (let i = 0; i <= stream.length; i++) {
      const d = new FrameDecoder();
      const out = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))];
      expectThreeFrames(out);
      expect(d.pendingBytes).toBe(0);
    }
  });

  test('split at every pair of boundaries (three chunks)', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const d = new FrameDecoder();
        expectThreeFrames([...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i, j)), ...d.push(stream.subarray(j))]);
      }
    }
  });

  test('one byte at a time', () => {
    const d = new FrameDecoder();
    const out: Decoded[] = [];
    for (const b of stream) out.push(...d.push(Buffer.from([b])));
    expectThreeFrames(out);
  });

  test('incomplete frame stays pending', () => {
    const d = new FrameDecoder();
    expect(d.push(stream.subarray(0, 12))).toEqual([]);
    expect(d.pendingBytes).toBe(12);
  });

  test('a 4 MiB frame in 64 KiB chunks', () => {
    const payload = Buffer.alloc(MAX_MESSAGE_LENGTH);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = i & 0xff;
    const f = encodeFrame(7, MessageType.Request, 0, payload);
    const d = new FrameDecoder();
    const out: Decoded[] = [];
    for (let i = 0; i < f.length; i += 65536) out.push(...d.push(f.subarray(i, i + 65536)));
    expect(out).toHaveLength(1);
    expect(out[0].kind === 'frame' && out[0].payload.equals(payload)).toBe(true);
  });

  test('oversized frame is skipped without buffering, then reported, then decoding goes on', () => {
    const d = new FrameDecoder();
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(MAX_MESSAGE_LENGTH + 1, 0);
    header.writeUInt32BE(5, 4);
    header[8] = MessageType.Request;
    // The header is announced at once (a reader may refuse to skip that much).
    expect(d.push(header)).toEqual([{ kind: 'announced', streamId: 5, length: MAX_MESSAGE_LENGTH + 1 }]);
    let sent = 0;
    const chunk = Buffer.alloc(100_000, 0xee);
    while (sent + chunk.length <= MAX_MESSAGE_LENGTH) {
      expect(d.push(chunk)).toEqual([]);
      expect(d.pendingBytes).toBe(0); // discarded, not held
      sent += chunk.length;
    }
    const rest = MAX_MESSAGE_LENGTH + 1 - sent;
    const next = encodeFrame(7, MessageType.Request, 0, Buffer.from('after'));
    // The tail of the oversized data and the next frame arrive coalesced.
    expect(d.push(Buffer.concat([Buffer.alloc(rest, 0xee), next]))).toEqual([
      { kind: 'oversized', streamId: 5, length: MAX_MESSAGE_LENGTH + 1 },
      { kind: 'frame', streamId: 7, type: 1, flags: 0, payload: Buffer.from('after') },
    ]);
  });
});
