import { decodeRequest, decodeResponse, decodeStatus, encodeRequest, encodeResponse, encodeStatus } from '../../src/protocol/ttrpc/messages';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('ttrpc messages', () => {
  test('Request encodes field by field as protobuf does', () => {
    const bytes = encodeRequest({
      service: 's',
      method: 'm',
      payload: Buffer.from([9]),
      timeoutNano: 300n,
      metadata: [{ key: 'k', value: 'v' }],
    });
    // 0a01 73 | 12 01 6d | 1a 01 09 | 20 ac02 | 2a 06 (0a 01 6b 12 01 76)
    expect(hex(bytes)).toBe('0a0173' + '12016d' + '1a0109' + '20ac02' + '2a06' + '0a016b120176');
  });

  test('defaults are omitted', () => {
    expect(encodeRequest({ service: '', method: '', payload: new Uint8Array(), timeoutNano: 0n, metadata: [] }).length).toBe(0);
    expect(encodeStatus({ code: 0, message: '', details: [] }).length).toBe(0);
  });

  test('Request round trip keeps repeated metadata in order and large timeouts', () => {
    const req = {
      service: 'containerd.task.v2.Task',
      method: 'Create',
      payload: Buffer.from('payload'),
      timeoutNano: 123_456_789_012_345n,
      metadata: [
        { key: 'containerd-namespace-ttrpc', value: 'default' },
        { key: 'a', value: '1' },
        { key: 'a', value: '2' },
      ],
    };
    const back = decodeRequest(encodeRequest(req));
    expect({ ...back, payload: Buffer.from(back.payload) }).toEqual(req);
  });

  test('Response with Status and details round trip', () => {
    const resp = {
      status: { code: 5, message: 'not found', details: [{ typeUrl: 'type.googleapis.com/x.Y', value: new Uint8Array([1, 2]) }] },
      payload: new Uint8Array([7, 8, 9]),
    };
    expect(hex(encodeStatus({ code: 5, message: 'x', details: [] }))).toBe('0805120178');
    const back = decodeResponse(encodeResponse(resp));
    expect(back.status?.code).toBe(5);
    expect(back.status?.message).toBe('not found');
    expect(back.status?.details[0].typeUrl).toBe('type.googleapis.com/x.Y');
    expect([...back.status!.details[0].value]).toEqual([1, 2]);
    expect([...back.payload]).toEqual([7, 8, 9]);
  });

  test('unknown fields and fields of an unexpected wire type are skipped', () => {
    // field 9 varint 1; field 1 as varint (wrong type) 5; then service "s"
    const bytes = Buffer.from('4801' + '0805' + '0a0173', 'hex');
    expect(decodeRequest(bytes).service).toBe('s');
    expect(decodeStatus(Buffer.from('1a00' + '0807', 'hex'))).toEqual({ code: 7, message: '', details: [{ typeUrl: '', value: new Uint8Array() }] });
  });

  test('truncated or malformed input throws', () => {
    expect(() => decodeRequest(Buffer.from('0a05737373', 'hex'))).toThrow();
    expect(() => decodeRequest(Buffer.from('0a', 'hex'))).toThrow();
    expect(() => decodeRequest(Buffer.from('0001', 'hex'))).toThrow();
    expect(() => decodeResponse(Buffer.from('0a0308', 'hex'))).toThrow();
  });
});
