// A process's memory as the checkpoint holds it: the pagemap's runs of pages, stored one after
// another in pages-<pages_id>.img. Reading an address range finds the runs that cover it and
// reads exactly those bytes from the pages image (a range outside every run reads as zeros, as
// in crit's MemoryReader); a pages image shorter than its pagemap is an error naming the file,
// never a read past its end.
import { InvalidArgumentError } from '../../errors';
import { checkRanges, MAX_RANGE_BYTES, type ByteRange, type ImageStore } from './image-store';
import { readPagemap, type Pagemap } from './images';
import { ImageName } from './magic';

export class ProcessMemory {
  private constructor(
    private readonly store: ImageStore,
    readonly pid: number,
    readonly pagemap: Pagemap,
    private readonly pageSize: number,
  ) {}

  static async open(store: ImageStore, pid: number, pageSize: number): Promise<ProcessMemory> {
    return new ProcessMemory(store, pid, await readPagemap(store, ImageName.pagemap(pid), pageSize), pageSize);
  }

  get pagesName(): string {
    return ImageName.pages(this.pagemap.pagesId);
  }

  /** Bytes of memory the pages image holds for this process. */
  get size(): number {
    return this.pagemap.runs.reduce((s, r) => (r.present ? s + r.nrPages * this.pageSize : s), 0);
  }

  /** Bytes [start, end) of the process's address space. */
  async read(start: bigint, end: bigint): Promise<Buffer> {
    if (end < start) throw new InvalidArgumentError(`process ${this.pid}: memory range ${start.toString(16)}..${end.toString(16)} ends before it starts`);
    const length = end - start;
    if (length > BigInt(MAX_RANGE_BYTES)) {
      throw new InvalidArgumentError(`process ${this.pid}: memory range of ${length} bytes is over the ${MAX_RANGE_BYTES}-byte limit`);
    }
    const out = Buffer.alloc(Number(length));
    const page = BigInt(this.pageSize);
    const wants: { range: ByteRange; at: number }[] = [];
    for (const run of this.pagemap.runs) {
      if (!run.present) continue;
      const runStart = run.vaddr;
      const runEnd = run.vaddr + BigInt(run.nrPages) * page;
      const from = start > runStart ? start : runStart;
      const to = end < runEnd ? end : runEnd;
      if (from >= to) continue;
      wants.push({ range: { offset: run.pagesOffset + Number(from - runStart), length: Number(to - from) }, at: Number(from - start) });
    }
    if (wants.length === 0) return out;
    const size = await this.store.size(this.pagesName);
    if (size === undefined) throw new InvalidArgumentError(`${this.store.describe(this.pagesName)} is missing (the pages of process ${this.pid})`);
    checkRanges(this.store.describe(this.pagesName), size, wants.map((w) => w.range));
    const parts = await this.store.readRanges(this.pagesName, wants.map((w) => w.range));
    parts.forEach((b, i) => b.copy(out, wants[i].at));
    return out;
  }
}
