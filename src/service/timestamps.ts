import type { Timestamp } from '../../api/gen/google/protobuf/timestamp';

export function toTimestamp(d: Date | null | undefined): Timestamp {
  // The Go shim sends Go's zero time (0001-01-01) for "not exited"; match it.
  if (!d) return { seconds: -62135596800, nanos: 0 };
  const ms = d.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}
