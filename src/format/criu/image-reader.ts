// Decodes one CRIU protobuf image held in memory: the header (magic pair, or the type magic
// alone as inventory.img and version-1 images have it), then entries of u32 little-endian size
// + protobuf payload. The buffer is the whole file, already bounded by the store that read it;
// every size read from it is checked against what is left before anything is sliced or decoded.
import { CriuImageError } from './image-error';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ImageMagic, type ImageKind } from './magic';
import { topLevelFields, WireError } from './wire';

export interface MessageDecoder<T> {
  decode(input: Uint8Array): T;
}

/** A message type of an image: how to decode it and which top-level fields proto2 requires. */
export interface EntryType<T> {
  name: string;
  codec: MessageDecoder<T>;
  required: readonly number[];
}

export interface RawEntry {
  /** Offset of the entry's size field in the file. */
  offset: number;
  payload: Uint8Array;
}

export interface RawImage {
  file: string;
  kind: ImageKind;
  /** True if the file began with IMG_COMMON_MAGIC or IMG_SERVICE_MAGIC. */
  hasFirstMagic: boolean;
  entries: RawEntry[];
}

const u32 = (buf: Uint8Array, at: number): number =>
  (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16)) + buf[at + 3] * 0x1000000;

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** Splits `buf` (the contents of `file`) into its entries; the type magic must be `kind`'s. */
export function splitImage(file: string, buf: Uint8Array, kind: ImageKind): RawImage {
  const want = ImageMagic[kind];
  if (buf.length < 4) throw new CriuImageError(file, 0, `file is ${buf.length} bytes, too short for an image header`);
  let pos = 0;
  let magic = u32(buf, 0);
  let hasFirstMagic = false;
  if (magic === IMG_COMMON_MAGIC || magic === IMG_SERVICE_MAGIC) {
    hasFirstMagic = true;
    if (buf.length < 8) throw new CriuImageError(file, 4, 'file ends inside the image header');
    pos = 4;
    magic = u32(buf, 4);
  }
  if (magic !== want) {
    throw new CriuImageError(file, pos, `magic ${hex(magic)} is not the ${kind} magic ${hex(want)}`);
  }
  pos += 4;
  const entries: RawEntry[] = [];
  while (pos < buf.length) {
    if (buf.length - pos < 4) throw new CriuImageError(file, pos, `file ends inside an entry size (${buf.length - pos} of 4 bytes)`);
    const size = u32(buf, pos);
    const left = buf.length - pos - 4;
    if (size > left) throw new CriuImageError(file, pos, `entry of ${size} bytes is longer than the ${left} bytes left in the file`);
    entries.push({ offset: pos, payload: buf.subarray(pos + 4, pos + 4 + size) });
    pos += 4 + size;
  }
  return { file, kind, hasFirstMagic, entries };
}

/** Decodes one entry as `type`, checking proto2's required fields first. */
export function decodeEntry<T>(file: string, entry: RawEntry, type: EntryType<T>): T {
  let present: Set<number>;
  try {
    present = topLevelFields(entry.payload);
  } catch (err) {
    if (err instanceof WireError) throw new CriuImageError(file, entry.offset + 4 + err.at, `${type.name}: ${err.message}`);
    throw err;
  }
  const missing = type.required.filter((f) => !present.has(f));
  if (missing.length > 0) {
    throw new CriuImageError(file, entry.offset, `${type.name} lacks required field${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  }
  try {
    return type.codec.decode(entry.payload);
  } catch (err) {
    // Nested messages are checked by the protobuf reader (lengths, wire types, recursion).
    throw new CriuImageError(file, entry.offset, `${type.name} does not decode: ${(err as Error).message}`);
  }
}
