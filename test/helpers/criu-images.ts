// Builds small CRIU image directories for unit tests: the files CRIU 4.2 writes for a process
// tree (inventory, pstree, core, ids, mm, pagemap + pages, fs, fdinfo, files, stats-dump),
// encoded with the generated codecs of api/gen/criu. protobuf-c writes proto2 `required` fields
// even when they are 0 and ts-proto's encoder leaves zeros out, so each entry gets its missing
// required fields appended as explicit zeros (field order does not matter on the wire).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { coreEntry, taskKobjIdsEntry } from '../../api/gen/criu/core';
import { fdinfoEntry, fdTypes, fileEntry } from '../../api/gen/criu/fdinfo';
import { fsEntry } from '../../api/gen/criu/fs';
import { inventoryEntry } from '../../api/gen/criu/inventory';
import { mmEntry } from '../../api/gen/criu/mm';
import { pagemapEntry, pagemapHead } from '../../api/gen/criu/pagemap';
import { pstreeEntry } from '../../api/gen/criu/pstree';
import { statsEntry } from '../../api/gen/criu/stats';
import { topLevelFields } from '../../src/format/criu/wire';
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, ImageMagic, PAGE_SIZE, type ImageKind } from '../../src/format/criu/magic';

interface Encoder<T> { encode(m: T, w?: BinaryWriter): BinaryWriter }

/** Encodes `msg`, then writes each required field it left out as an explicit zero (varint, or empty bytes for `strings`). */
export function encodeEntry<T>(codec: Encoder<T>, msg: T, required: number[], strings: number[] = []): Uint8Array {
  const body = codec.encode(msg).finish();
  const present = topLevelFields(body);
  const w = new BinaryWriter();
  w.raw(body);
  for (const f of required) {
    if (present.has(f)) continue;
    if (strings.includes(f)) w.uint32((f << 3) | 2).uint32(0);
    else w.uint32(f << 3).uint32(0);
  }
  return w.finish();
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** A whole image file: magic pair (or the type magic alone) and size-prefixed entries. */
export function imageFile(kind: ImageKind, entries: Uint8Array[], head: 'common' | 'service' | 'type-only' = 'common'): Buffer {
  const parts: Buffer[] = [];
  if (head === 'common') parts.push(u32(IMG_COMMON_MAGIC));
  if (head === 'service') parts.push(u32(IMG_SERVICE_MAGIC));
  parts.push(u32(ImageMagic[kind]));
  for (const e of entries) parts.push(u32(e.length), Buffer.from(e));
  return Buffer.concat(parts);
}

export interface FakeProcess {
  pid: number;
  ppid: number;
  comm: string;
  argv: string[];
  env: string[];
  /** Regular files open, by fd. */
  files?: Record<number, string>;
  threads?: number[];
  state?: number;
}

export interface FakeCheckpoint {
  processes: FakeProcess[];
  /** Write nr_pages (CRIU 4.2) or compat_nr_pages only (older CRIU). */
  pagemapStyle?: 'nr_pages' | 'compat';
}

/** Address where the fake argv/env pages live; one pagemap run of 2 pages per process, then a gap, then 1 page. */
const ARG_BASE = 0x7ffd_0000_0000n;

/** The default test tree: sh with two children, as the e2e tests run it. */
export function defaultTree(): FakeCheckpoint {
  return {
    processes: [
      { pid: 1, ppid: 0, comm: 'sh', argv: ['sh', '-c', 'main'], env: ['PATH=/bin', 'FERRY_TEST_VAR=hello'], files: { 3: '/tmp/open-file' } },
      { pid: 7, ppid: 1, comm: 'sleep', argv: ['sleep', '1000'], env: ['PATH=/bin'] },
      { pid: 8, ppid: 1, comm: 'nc', argv: ['nc', '-l', '-p', '8080'], env: ['PATH=/bin'], threads: [8, 9] },
    ],
  };
}

/** Writes the images of `ckpt` into `dir` (created). Returns the file names written. */
export function writeFakeCheckpoint(dir: string, ckpt: FakeCheckpoint = defaultTree()): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files = new Map<string, Buffer>();
  files.set('inventory.img', imageFile('INVENTORY', [encodeEntry(inventoryEntry, { imgVersion: 2, fdinfoPerId: true }, [1])], 'type-only'));
  files.set('pstree.img', imageFile('PSTREE', ckpt.processes.map((p) =>
    encodeEntry(pstreeEntry, { pid: p.pid, ppid: p.ppid, pgid: ckpt.processes[0].pid, sid: ckpt.processes[0].pid, threads: p.threads ?? [p.pid] }, [1, 2, 3, 4]))));
  const fileEntries: Uint8Array[] = [];
  let nextFileId = 1;
  const fileId = (name: string) => {
    const id = nextFileId++;
    fileEntries.push(encodeEntry(fileEntry, { type: fdTypes.REG, id, reg: { id, flags: 0, pos: 0n, fown: { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 }, name, buildId: [] } }, [1, 2]));
    return id;
  };
  const rootId = fileId('/');
  ckpt.processes.forEach((p, i) => {
    const filesId = 100 + i;
    const pagesId = 200 + i;
    for (const tid of p.threads ?? [p.pid]) {
      const tc = tid === p.pid ? { taskState: p.state ?? 1, exitCode: 0, personality: 0, flags: 0, blkSigset: 0n, comm: p.comm } : undefined;
      files.set(`core-${tid}.img`, imageFile('CORE', [encodeEntry(coreEntry, { mtype: 1, tc, threadCore: { futexRla: 0n, futexRlaLen: 0, comm: p.comm } }, [1])]));
    }
    if ((p.state ?? 1) !== 1) return;
    files.set(`ids-${p.pid}.img`, imageFile('IDS', [encodeEntry(taskKobjIdsEntry, { vmId: 10 + i, filesId, fsId: 20 + i, sighandId: 30 + i }, [1, 2, 3, 4])]));
    // argv at the start of page 0, env at the start of page 1 (both NUL-terminated strings).
    const argv = Buffer.from(p.argv.map((a) => `${a}\0`).join(''));
    const env = Buffer.from(p.env.map((a) => `${a}\0`).join(''));
    const pages = Buffer.alloc(3 * PAGE_SIZE);
    argv.copy(pages, 0);
    env.copy(pages, PAGE_SIZE);
    pages.write(`third page of ${p.comm}`, 2 * PAGE_SIZE);
    const argStart = ARG_BASE;
    const envStart = ARG_BASE + BigInt(PAGE_SIZE);
    const mm = {
      mmStartCode: 0x400000n, mmEndCode: 0x401000n, mmStartData: 0n, mmEndData: 0n, mmStartStack: 0n, mmStartBrk: 0n, mmBrk: 0n,
      mmArgStart: argStart, mmArgEnd: argStart + BigInt(argv.length), mmEnvStart: envStart, mmEnvEnd: envStart + BigInt(env.length),
      exeFileId: rootId, mmSavedAuxv: [],
      vmas: [{ start: ARG_BASE, end: ARG_BASE + BigInt(4 * PAGE_SIZE), pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 1, fd: -1n }],
    };
    files.set(`mm-${p.pid}.img`, imageFile('MM', [encodeEntry(mmEntry, mm, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])]));
    const run = (vaddr: bigint, n: number) => ckpt.pagemapStyle === 'compat'
      ? encodeEntry(pagemapEntry, { vaddr, compatNrPages: n }, [1, 2])
      : encodeEntry(pagemapEntry, { vaddr, compatNrPages: 0, flags: 4, nrPages: BigInt(n) }, [1, 2]);
    files.set(`pagemap-${p.pid}.img`, imageFile('PAGEMAP', [
      encodeEntry(pagemapHead, { pagesId }, [1]),
      run(ARG_BASE, 2),
      run(ARG_BASE + BigInt(3 * PAGE_SIZE), 1),
    ]));
    files.set(`pages-${pagesId}.img`, pages);
    files.set(`fs-${p.pid}.img`, imageFile('FS', [encodeEntry(fsEntry, { cwdId: rootId, rootId }, [1, 2])]));
    const fds = Object.entries(p.files ?? {}).map(([fd, name]) =>
      encodeEntry(fdinfoEntry, { id: fileId(name), flags: 0, type: fdTypes.REG, fd: Number(fd) }, [1, 2, 3, 4]));
    files.set(`fdinfo-${filesId}.img`, imageFile('FDINFO', fds));
  });
  files.set('files.img', imageFile('FILES', fileEntries));
  files.set('stats-dump', imageFile('STATS', [statsEntry.encode({ dump: { freezingTime: 11, frozenTime: 22, memdumpTime: 33, memwriteTime: 44, pagesScanned: 55n, pagesSkippedParent: 0n, pagesWritten: 66n, pagesLazy: 0n } }).finish()], 'service'));
  for (const [name, data] of files) fs.writeFileSync(path.join(dir, name), data);
  return [...files.keys()].sort();
}
