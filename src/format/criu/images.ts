// Typed readers of the CRIU images ferry uses, over an ImageStore. Each returns decoded protobuf
// messages (api/gen/criu, generated from api/proto/criu) and refuses a malformed image with a
// CriuImageError naming the file and the offset. Required fields are those CRIU's
// images/*.proto (v4.2) marks `required`.
import { coreEntry, type coreEntry as CoreEntry, taskKobjIdsEntry, type taskKobjIdsEntry as TaskKobjIdsEntry } from '../../../api/gen/criu/core';
import { fdinfoEntry, type fdinfoEntry as FdinfoEntry, fileEntry, type fileEntry as FileEntry } from '../../../api/gen/criu/fdinfo';
import { fsEntry, type fsEntry as FsEntry } from '../../../api/gen/criu/fs';
import { inventoryEntry, type inventoryEntry as InventoryEntry } from '../../../api/gen/criu/inventory';
import { mmEntry, type mmEntry as MmEntry } from '../../../api/gen/criu/mm';
import { pagemapEntry, type pagemapEntry as PagemapEntry, pagemapHead } from '../../../api/gen/criu/pagemap';
import { pstreeEntry, type pstreeEntry as PstreeEntry } from '../../../api/gen/criu/pstree';
import { statsEntry, type statsEntry as StatsEntry } from '../../../api/gen/criu/stats';
import { CriuImageError } from './image-error';
import { decodeEntry, splitImage, type EntryType, type RawImage } from './image-reader';
import { MAX_IMAGE_BYTES, type ImageStore } from './image-store';
import { ImageName, PE_PARENT, PE_PRESENT, type ImageKind } from './magic';

export type { CoreEntry, TaskKobjIdsEntry, FdinfoEntry, FileEntry, FsEntry, InventoryEntry, MmEntry, PagemapEntry, PstreeEntry, StatsEntry };

export const EntryTypes = {
  inventory: { name: 'inventory_entry', codec: inventoryEntry, required: [1] },
  pstree: { name: 'pstree_entry', codec: pstreeEntry, required: [1, 2, 3, 4] },
  core: { name: 'core_entry', codec: coreEntry, required: [1] },
  ids: { name: 'task_kobj_ids_entry', codec: taskKobjIdsEntry, required: [1, 2, 3, 4] },
  mm: { name: 'mm_entry', codec: mmEntry, required: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] },
  pagemapHead: { name: 'pagemap_head', codec: pagemapHead, required: [1] },
  pagemap: { name: 'pagemap_entry', codec: pagemapEntry, required: [1, 2] },
  fdinfo: { name: 'fdinfo_entry', codec: fdinfoEntry, required: [1, 2, 3, 4] },
  files: { name: 'file_entry', codec: fileEntry, required: [1, 2] },
  fs: { name: 'fs_entry', codec: fsEntry, required: [1, 2] },
  stats: { name: 'stats_entry', codec: statsEntry, required: [] },
} satisfies Record<string, EntryType<unknown>>;

async function rawImage(store: ImageStore, name: string, kind: ImageKind): Promise<RawImage> {
  const buf = await store.read(name, MAX_IMAGE_BYTES);
  return splitImage(store.describe(name), buf, kind);
}

/** All entries of an image of one message type. */
export async function readEntries<T>(store: ImageStore, name: string, kind: ImageKind, type: EntryType<T>): Promise<T[]> {
  const img = await rawImage(store, name, kind);
  return img.entries.map((e) => decodeEntry(img.file, e, type));
}

/** The single entry of a one-entry image (core, ids, mm, fs, inventory). */
export async function readOne<T>(store: ImageStore, name: string, kind: ImageKind, type: EntryType<T>): Promise<T> {
  const img = await rawImage(store, name, kind);
  if (img.entries.length === 0) throw new CriuImageError(img.file, img.hasFirstMagic ? 8 : 4, `no ${type.name} entry`);
  return decodeEntry(img.file, img.entries[0], type);
}

export const readInventory = (s: ImageStore) => readOne(s, ImageName.inventory, 'INVENTORY', EntryTypes.inventory);
export const readPstree = (s: ImageStore) => readEntries(s, ImageName.pstree, 'PSTREE', EntryTypes.pstree);
export const readCore = (s: ImageStore, tid: number) => readOne(s, ImageName.core(tid), 'CORE', EntryTypes.core);
export const readIds = (s: ImageStore, pid: number) => readOne(s, ImageName.ids(pid), 'IDS', EntryTypes.ids);
export const readMm = (s: ImageStore, pid: number) => readOne(s, ImageName.mm(pid), 'MM', EntryTypes.mm);
export const readFs = (s: ImageStore, pid: number) => readOne(s, ImageName.fs(pid), 'FS', EntryTypes.fs);
export const readFdinfo = (s: ImageStore, filesId: number) => readEntries(s, ImageName.fdinfo(filesId), 'FDINFO', EntryTypes.fdinfo);
export const readFiles = (s: ImageStore) => readEntries(s, ImageName.files, 'FILES', EntryTypes.files);

/** A pagemap entry as CRIU reads it: page count from nr_pages (4.2) or compat_nr_pages (older), flags defaulted. */
export interface PageRun {
  vaddr: bigint;
  nrPages: number;
  /** The pages are in this image's pages file (PE_PRESENT), as opposed to a parent checkpoint or lazy. */
  present: boolean;
  inParent: boolean;
  /** Byte offset of the run in the pages file (sum of the present runs before it). */
  pagesOffset: number;
}

export interface Pagemap {
  file: string;
  pagesId: number;
  runs: PageRun[];
}

/** Upper bound on a page count: 2^52 pages is beyond any address space; keeps sums exact as numbers. */
const MAX_PAGES = 2 ** 40;

/**
 * pagemap-*.img: a pagemap_head, then pagemap_entry runs. Mirrors init_compat_pagemap_entry
 * (criu/pagemap.c): a run marked in_parent is PE_PARENT; a run without flags is PE_PRESENT; a
 * run without nr_pages takes compat_nr_pages.
 */
export async function readPagemap(store: ImageStore, name: string, pageSize: number): Promise<Pagemap> {
  const img = await rawImage(store, name, 'PAGEMAP');
  if (img.entries.length === 0) throw new CriuImageError(img.file, img.hasFirstMagic ? 8 : 4, 'no pagemap_head entry');
  const head = decodeEntry(img.file, img.entries[0], EntryTypes.pagemapHead);
  const runs: PageRun[] = [];
  let offset = 0;
  for (const raw of img.entries.slice(1)) {
    const e = decodeEntry(img.file, raw, EntryTypes.pagemap);
    let flags = e.flags;
    if (e.inParent) flags = (flags ?? 0) | PE_PARENT;
    else if (flags === undefined) flags = PE_PRESENT;
    const count = e.nrPages !== undefined ? e.nrPages : BigInt(e.compatNrPages);
    if (count > BigInt(MAX_PAGES)) throw new CriuImageError(img.file, raw.offset, `pagemap_entry of ${count} pages is beyond any address space`);
    const nrPages = Number(count);
    const present = (flags & PE_PRESENT) !== 0;
    runs.push({ vaddr: e.vaddr, nrPages, present, inParent: (flags & PE_PARENT) !== 0, pagesOffset: offset });
    if (present) {
      offset += nrPages * pageSize;
      if (!Number.isSafeInteger(offset)) throw new CriuImageError(img.file, raw.offset, 'pages of the pagemap add up beyond 2^53 bytes');
    }
  }
  return { file: img.file, pagesId: head.pagesId, runs };
}

/** Bytes the pages file of a pagemap must hold: its present runs. */
export function presentBytes(pm: Pagemap, pageSize: number): number {
  return pm.runs.reduce((sum, r) => (r.present ? sum + r.nrPages * pageSize : sum), 0);
}

/** stats-dump / stats-restore: a service image (IMG_SERVICE_MAGIC) with one stats_entry. */
export async function readStats(store: ImageStore, name: string): Promise<StatsEntry> {
  return readOne(store, name, 'STATS', EntryTypes.stats);
}
