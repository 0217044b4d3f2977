// The writable layer of a checkpointed container as Podman and CRI-O store it: rootfs-diff.tar,
// a plain tar of what was added or changed, plus deleted.files, a JSON list of the paths that
// were removed (checkpoint-formats.md §1.4, §1.6). containerd hands the layer out as an OCI
// layer (its Diff service), where a deletion is a `.wh.NAME` whiteout entry: this file turns
// one into the other. Every other entry is copied as it is, xattrs (PAX records) included.
//
// Opaque directories (`.wh..wh..opq`: "everything below from lower layers is gone") cannot be
// said with deleted.files, which lists paths to remove *after* the tar is applied. containerd's
// walking differ never writes them (it compares two mounted trees and whiteouts each removed
// path), so one is refused rather than converted wrongly.
import * as path from 'node:path';
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './layout';
import { readTarEntries, TarEntry, TarFormatError } from './tar-reader';
import { TarWriteEntry, TarWriteType } from './tar-writer';

export interface RootfsDiffSummary {
  /** Absolute paths removed from the image's filesystem ('/etc/motd'), in layer order. */
  deletedFiles: string[];
  /** Entries copied into rootfs-diff.tar. */
  entries: number;
}

/** A layer name as a clean relative path ('./a/b/' → 'a/b'); '' for the root itself. */
function relativeName(name: string): string {
  const clean = path.posix.normalize(`/${name}`).replace(/\/+$/, '');
  return clean.replace(/^\/+/, '');
}

const COPYABLE: Partial<Record<TarEntry['header']['type'], TarWriteType>> = {
  file: 'file', directory: 'directory', symlink: 'symlink', hardlink: 'hardlink',
  fifo: 'fifo', 'char-device': 'char-device', 'block-device': 'block-device',
};

/**
 * Reads an uncompressed OCI layer and yields the entries of rootfs-diff.tar (for writeTar),
 * collecting the whiteouts into `summary.deletedFiles`. The summary is complete once the
 * generator has finished.
 */
export async function* rootfsDiffEntries(layer: AsyncIterable<Buffer>, summary: RootfsDiffSummary): AsyncGenerator<TarWriteEntry> {
  for await (const e of readTarEntries(layer)) {
    const h = e.header;
    const rel = relativeName(h.name);
    if (rel === '') continue; // the layer's "./" root entry: the root is not ours to change
    const base = path.posix.basename(rel);
    const dir = path.posix.dirname(rel);
    if (base === WHITEOUT_OPAQUE) {
      throw new TarFormatError(`writable layer: opaque directory marker in ${JSON.stringify(dir)} cannot be expressed in deleted.files`);
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const removed = base.slice(WHITEOUT_PREFIX.length);
      if (removed === '') throw new TarFormatError(`writable layer: whiteout without a name: ${JSON.stringify(h.name)}`);
      summary.deletedFiles.push(`/${dir === '.' ? removed : `${dir}/${removed}`}`);
      continue;
    }
    const type = COPYABLE[h.type];
    if (!type) throw new TarFormatError(`writable layer: entry ${JSON.stringify(h.name)} has unsupported type ${JSON.stringify(h.typeflag)}`);
    summary.entries++;
    yield {
      name: rel, type, size: h.size, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime,
      linkname: type === 'hardlink' ? relativeName(h.linkname) : h.linkname,
      devmajor: h.devmajor, devminor: h.devminor, pax: h.pax,
      body: type === 'file' ? e.body : undefined,
    };
  }
}
