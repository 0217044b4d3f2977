// Is a CRIU image directory complete enough to restore? CRIU itself trusts its images: with a
// truncated pages image, CRIU 4.1's restorer loops forever ("Advanced iov 0 bytes") and never
// answers. So before any `runc restore`, and for `ferry inspect --verify`, this checks what CRIU
// will rely on, reading only image heads and sizes (never the pages):
//  - inventory.img is present, decodes, and has an image version CRIU restores (1 or 2);
//  - pstree.img is present and decodes; its pids are unique and every parent is in the tree;
//  - every pid and thread id of the tree has its core-<tid>.img, and it decodes;
//  - every live (or stopped) process has ids-, mm- and pagemap-<pid>.img, and they decode;
//  - every pagemap (per process, and pagemap-shmem-*) names a pages-<id>.img that exists and is
//    exactly as long as the pagemap's present runs say.
// Every problem is collected (not only the first), each naming its file.
import { InvalidArgumentError, NotFoundError } from '../../errors';
import { CriuImageError } from './image-error';
import { DirImageStore, type ImageStore } from './image-store';
import { presentBytes, readCore, readIds, readInventory, readMm, readPagemap, readPstree, type Pagemap, type PstreeEntry } from './images';
import { ImageName, KNOWN_IMAGE_VERSIONS, PAGE_SIZE, PAGEMAP_NAME_RE, TaskState } from './magic';

export interface VerifyProblem {
  /** The image file concerned, as the store names it. */
  file: string;
  problem: string;
}

export interface VerifyReport {
  ok: boolean;
  imageVersion?: number;
  processes: number;
  threads: number;
  pagemaps: number;
  /** Bytes of memory pages the pagemaps account for (all present runs). */
  pagesBytes: number;
  problems: VerifyProblem[];
}

export interface VerifyOptions {
  pageSize?: number;
}

/** Runs a read and turns a decode error or absence into a problem; other errors propagate. */
async function attempt<T>(report: VerifyReport, store: ImageStore, name: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof NotFoundError) {
      report.problems.push({ file: store.describe(name), problem: 'missing' });
    } else if (err instanceof CriuImageError) {
      report.problems.push({ file: err.file, problem: err.message.slice(`CRIU image ${err.file}: `.length) });
    } else if (err instanceof InvalidArgumentError) {
      report.problems.push({ file: store.describe(name), problem: err.message });
    } else {
      throw err;
    }
    return undefined;
  }
}

/** Checks the CRIU images of `store` (see the file comment); never throws for bad content, reports it. */
export async function verifyCriuImages(store: ImageStore, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const pageSize = opts.pageSize ?? PAGE_SIZE;
  const report: VerifyReport = { ok: false, processes: 0, threads: 0, pagemaps: 0, pagesBytes: 0, problems: [] };
  const problem = (name: string, text: string) => report.problems.push({ file: store.describe(name), problem: text });

  const inventory = await attempt(report, store, ImageName.inventory, () => readInventory(store));
  if (inventory) {
    report.imageVersion = inventory.imgVersion;
    if (!(KNOWN_IMAGE_VERSIONS as readonly number[]).includes(inventory.imgVersion)) {
      problem(ImageName.inventory, `image version ${inventory.imgVersion} is not one CRIU restores (${KNOWN_IMAGE_VERSIONS.join(' or ')})`);
    }
    if (!inventory.fdinfoPerId) problem(ImageName.inventory, 'images older than fdinfo_per_id, which CRIU no longer restores');
  }

  const checkedPagemaps = new Set<string>();
  const checkPagemap = async (name: string) => {
    if (checkedPagemaps.has(name)) return;
    checkedPagemaps.add(name);
    const pm: Pagemap | undefined = await attempt(report, store, name, () => readPagemap(store, name, pageSize));
    if (!pm) return;
    report.pagemaps++;
    const want = presentBytes(pm, pageSize);
    report.pagesBytes += want;
    const pagesName = ImageName.pages(pm.pagesId);
    const have = await attempt(report, store, pagesName, () => store.size(pagesName));
    if (have === undefined) {
      if (!report.problems.some((p) => p.file === store.describe(pagesName))) {
        problem(pagesName, `missing (${name} puts ${want} bytes of pages in it)`);
      }
      return;
    }
    if (have !== want) {
      problem(pagesName, `is ${have} bytes, but ${name} says ${want} bytes (${want / pageSize} pages of ${pageSize} bytes)${have < want ? ': truncated' : ''}`);
    }
  };

  const pstree: PstreeEntry[] | undefined = await attempt(report, store, ImageName.pstree, () => readPstree(store));
  if (pstree) {
    if (pstree.length === 0) problem(ImageName.pstree, 'holds no process');
    const pids = new Set<number>();
    for (const p of pstree) {
      if (pids.has(p.pid)) problem(ImageName.pstree, `pid ${p.pid} appears twice`);
      pids.add(p.pid);
    }
    for (const p of pstree) {
      if (p.ppid !== 0 && !pids.has(p.ppid)) problem(ImageName.pstree, `pid ${p.pid} has parent ${p.ppid}, which is not in the tree`);
    }
    report.processes = pids.size;
    for (const p of pstree) {
      const tids = new Set<number>([p.pid, ...p.threads]);
      report.threads += tids.size;
      let state: number | undefined;
      for (const tid of tids) {
        const core = await attempt(report, store, ImageName.core(tid), () => readCore(store, tid));
        if (core && tid === p.pid) {
          if (!core.tc) problem(ImageName.core(tid), `has no task_core_entry for process ${p.pid}`);
          state = core.tc?.taskState;
        }
      }
      if (state !== TaskState.ALIVE && state !== TaskState.STOPPED) continue;
      await attempt(report, store, ImageName.ids(p.pid), () => readIds(store, p.pid));
      await attempt(report, store, ImageName.mm(p.pid), () => readMm(store, p.pid));
      await checkPagemap(ImageName.pagemap(p.pid));
    }
  }
  // Pagemaps not tied to a process of the tree (shared memory) are read by CRIU too.
  for (const name of await store.names()) {
    if (PAGEMAP_NAME_RE.test(name)) await checkPagemap(name);
  }

  report.ok = report.problems.length === 0;
  return report;
}

/** One line per problem, for errors and `ferry inspect --verify`. */
export function formatProblems(report: VerifyReport): string[] {
  return report.problems.map((p) => `${p.file}: ${p.problem}`);
}

/**
 * For the shim, before `runc restore`: refuses (InvalidArgumentError) a CRIU image directory that
 * is not complete, naming what is missing or inconsistent. A directory path is read without
 * following symlinks.
 */
export async function assertCriuImagesComplete(dir: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const report = await verifyCriuImages(new DirImageStore(dir), opts);
  if (!report.ok) {
    const lines = formatProblems(report);
    const shown = lines.slice(0, 5).join('; ');
    const more = lines.length > 5 ? `; and ${lines.length - 5} more` : '';
    throw new InvalidArgumentError(`restore refused: the checkpoint's CRIU images are incomplete or inconsistent: ${shown}${more}`);
  }
  return report;
}
