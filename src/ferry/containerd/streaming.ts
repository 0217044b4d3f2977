// containerd.services.streaming.v1.Streaming: side channels that other services (Transfer) use
// by id — progress of a pull or push, registry credentials. The client opens the stream, sends
// StreamInit{id} as its first message and waits for containerd's acknowledgement before it
// gives the id to the other service (as containerd's core/streaming/proxy does).
import { StreamingDefinition, StreamInit } from '../../../api/gen/containerd/services/streaming/v1/streaming';
import type { Any } from '../../../api/gen/google/protobuf/any';
import type { BidiCall, Connection } from './connection';

export const STREAM_INIT_TYPE_URL = 'containerd.services.streaming.v1.StreamInit';

/** A fresh stream id, unique enough for one containerd ("progress-<time>-<random>"). */
export function streamId(kind: string): string {
  return `${kind}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Opens stream `id`; resolves once containerd has acknowledged it. */
export async function openStream(conn: Connection, id: string): Promise<BidiCall<Any, Any>> {
  const call = conn.bidiStream(StreamingDefinition, 'stream');
  try {
    await call.write({ typeUrl: STREAM_INIT_TYPE_URL, value: StreamInit.encode({ id }).finish() });
    const ack = await call.read();
    if (ack === undefined) throw new Error(`containerd closed stream ${id} before acknowledging it`);
    return call;
  } catch (err) {
    call.cancel();
    throw err;
  }
}
