// A minimal, deterministic ustar writer: enough to build an image layer (files, directories,
// symlinks) and an OCI layout archive without docker or a tar binary. Deterministic output
// (fixed mtime, uid/gid 0, entries in the caller's order) keeps layer digests stable, so the
// built image can be cached by content.

export type TarEntry =
  | { type: 'file'; path: string; mode: number; data: Buffer }
  | { type: 'dir'; path: string; mode: number }
  | { type: 'symlink'; path: string; target: string };

const BLOCK = 512;
// Fixed timestamp (2024-01-01): a real date rather than 0 so tools do not warn about it.
const MTIME = 1704067200;

function writeString(header: Buffer, value: string, offset: number, length: number): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar: field too long: ${value}`);
  bytes.copy(header, offset);
}

function writeOctal(header: Buffer, value: number, offset: number, length: number): void {
  // length-1 octal digits, zero padded, then NUL (the classic ustar layout).
  const text = value.toString(8).padStart(length - 1, '0');
  if (text.length > length - 1) throw new Error(`tar: number too large: ${value}`);
  writeString(header, text, offset, length - 1);
  header[offset + length - 1] = 0;
}

// Splits a path into ustar's name (100 bytes) and prefix (155 bytes) fields.
function splitPath(path: string): { name: string; prefix: string } {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  const cut = path.lastIndexOf('/', 155);
  if (cut <= 0 || Buffer.byteLength(path.slice(cut + 1)) > 100) {
    throw new Error(`tar: path too long for ustar: ${path}`);
  }
  return { name: path.slice(cut + 1), prefix: path.slice(0, cut) };
}

function header(entry: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const path = entry.type === 'dir' && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path;
  const { name, prefix } = splitPath(path);
  writeString(h, name, 0, 100);
  const mode = entry.type === 'symlink' ? 0o777 : entry.mode;
  writeOctal(h, mode, 100, 8);
  writeOctal(h, 0, 108, 8); // uid
  writeOctal(h, 0, 116, 8); // gid
  writeOctal(h, entry.type === 'file' ? entry.data.length : 0, 124, 12);
  writeOctal(h, MTIME, 136, 12);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h[156] = entry.type === 'file' ? 0x30 : entry.type === 'dir' ? 0x35 : 0x32; // '0' '5' '2'
  if (entry.type === 'symlink') writeString(h, entry.target, 157, 100);
  writeString(h, 'ustar\0', 257, 6);
  writeString(h, '00', 263, 2);
  writeString(h, 'root', 265, 32);
  writeString(h, 'root', 297, 32);
  writeString(h, prefix, 345, 155);
  let sum = 0;
  for (const byte of h) sum += byte;
  writeOctal(h, sum, 148, 7); // six digits + NUL ...
  h[155] = 0x20; // ... + space
  return h;
}

/** Serialises entries into one tar archive (with the two zero blocks that end it). */
export function makeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(header(entry));
    if (entry.type === 'file') {
      parts.push(entry.data);
      const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
