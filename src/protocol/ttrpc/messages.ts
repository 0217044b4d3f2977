// The few protobuf messages ttrpc itself carries (ttrpc's request.proto), coded by hand so the
// transport needs no generated code:
//   Request  { string service = 1; string method = 2; bytes payload = 3;
//              int64 timeout_nano = 4; repeated KeyValue metadata = 5; }
//   KeyValue { string key = 1; string value = 2; }
//   Response { google.rpc.Status status = 1; bytes payload = 2; }
//   Status   { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
//   Any      { string type_url = 1; bytes value = 2; }
// Encoders omit proto3 default values, as Go's proto.Marshal does. Decoders skip unknown fields
// and fields with an unexpected wire type (Go keeps those as unknown fields too).

import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

export interface KeyValue {
  key: string;
  value: string;
}

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Relative timeout in nanoseconds; 0 means none. */
  timeoutNano: bigint;
  metadata: KeyValue[];
}

export interface AnyMessage {
  typeUrl: string;
  value: Uint8Array;
}

export interface RpcStatus {
  code: number;
  message: string;
  details: AnyMessage[];
}

export interface TtrpcResponse {
  status?: RpcStatus;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function encodeRequest(req: TtrpcRequest): Uint8Array {
  const w = new BinaryWriter();
  if (req.service) w.tag(1, WireType.LengthDelimited).string(req.service);
  if (req.method) w.tag(2, WireType.LengthDelimited).string(req.method);
  if (req.payload.length) w.tag(3, WireType.LengthDelimited).bytes(req.payload);
  if (req.timeoutNano !== 0n) w.tag(4, WireType.Varint).int64(req.timeoutNano);
  for (const kv of req.metadata) {
    w.tag(5, WireType.LengthDelimited).fork();
    if (kv.key) w.tag(1, WireType.LengthDelimited).string(kv.key);
    if (kv.value) w.tag(2, WireType.LengthDelimited).string(kv.value);
    w.join();
  }
  return w.finish();
}

export function decodeRequest(buf: Uint8Array): TtrpcRequest {
  const req: TtrpcRequest = { service: '', method: '', payload: EMPTY, timeoutNano: 0n, metadata: [] };
  readFields(buf, (r, field, wt) => {
    if (field === 1 && wt === WireType.LengthDelimited) req.service = r.string();
    else if (field === 2 && wt === WireType.LengthDelimited) req.method = r.string();
    else if (field === 3 && wt === WireType.LengthDelimited) req.payload = r.bytes();
    else if (field === 4 && wt === WireType.Varint) req.timeoutNano = BigInt(r.int64());
    else if (field === 5 && wt === WireType.LengthDelimited) req.metadata.push(decodeKeyValue(r.bytes()));
    else return false;
    return true;
  });
  return req;
}

function decodeKeyValue(buf: Uint8Array): KeyValue {
  const kv: KeyValue = { key: '', value: '' };
  readFields(buf, (r, field, wt) => {
    if (field === 1 && wt === WireType.LengthDelimited) kv.key = r.string();
    else if (field === 2 && wt === WireType.LengthDelimited) kv.value = r.string();
    else return false;
    return true;
  });
  return kv;
}

export function encodeResponse(resp: TtrpcResponse): Uint8Array {
  const w = new BinaryWriter();
  if (resp.status) w.tag(1, WireType.LengthDelimited).bytes(encodeStatus(resp.status));
  if (resp.payload.length) w.tag(2, WireType.LengthDelimited).bytes(resp.payload);
  return w.finish();
}

export function decodeResponse(buf: Uint8Array): TtrpcResponse {
  const resp: TtrpcResponse = { payload: EMPTY };
  readFields(buf, (r, field, wt) => {
    if (field === 1 && wt === WireType.LengthDelimited) resp.status = decodeStatus(r.bytes());
    else if (field === 2 && wt === WireType.LengthDelimited) resp.payload = r.bytes();
    else return false;
    return true;
  });
  return resp;
}

export function encodeStatus(st: RpcStatus): Uint8Array {
  const w = new BinaryWriter();
  if (st.code) w.tag(1, WireType.Varint).int32(st.code);
  if (st.message) w.tag(2, WireType.LengthDelimited).string(st.message);
  for (const d of st.details) {
    w.tag(3, WireType.LengthDelimited).fork();
    if (d.typeUrl) w.tag(1, WireType.LengthDelimited).string(d.typeUrl);
    if (d.value.length) w.tag(2, WireType.LengthDelimited).bytes(d.value);
    w.join();
  }
  return w.finish();
}

export function decodeStatus(buf: Uint8Array): RpcStatus {
  const st: RpcStatus = { code: 0, message: '', details: [] };
  readFields(buf, (r, field, wt) => {
    if (field === 1 && wt === WireType.Varint) st.code = r.int32();
    else if (field === 2 && wt === WireType.LengthDelimited) st.message = r.string();
    else if (field === 3 && wt === WireType.LengthDelimited) st.details.push(decodeAny(r.bytes()));
    else return false;
    return true;
  });
  return st;
}

function decodeAny(buf: Uint8Array): AnyMessage {
  const any: AnyMessage = { typeUrl: '', value: EMPTY };
  readFields(buf, (r, field, wt) => {
    if (field === 1 && wt === WireType.LengthDelimited) any.typeUrl = r.string();
    else if (field === 2 && wt === WireType.LengthDelimited) any.value = r.bytes();
    else return false;
    return true;
  });
  return any;
}

/**
 * Walks the fields of one message; `field` reads the ones it knows and returns false for the
 * rest, which are skipped. Truncated or malformed input throws (BinaryReader bounds checks).
 */
function readFields(buf: Uint8Array, field: (r: BinaryReader, no: number, wt: WireType) => boolean): void {
  const r = new BinaryReader(buf);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 0) throw new Error('invalid field number 0');
    if (!field(r, no, wt)) r.skip(wt, no);
  }
  if (r.pos !== r.len) throw new Error('premature end of message');
}
