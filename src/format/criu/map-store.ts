// An ImageStore over files already in memory (a stats-dump read from an archive's top level,
// images built by tests).
import { NotFoundError, InvalidArgumentError } from '../../errors';
import { checkImageName, checkRanges, type ByteRange, type ImageStore } from './image-store';

export class MapImageStore implements ImageStore {
  constructor(private readonly where: string, private readonly files: Map<string, Buffer>) {}

  describe(name: string): string {
    return `${this.where}${name}`;
  }

  async names(): Promise<string[]> {
    return [...this.files.keys()].sort();
  }

  async size(name: string): Promise<number | undefined> {
    checkImageName(name);
    return this.files.get(name)?.length;
  }

  private get(name: string): Buffer {
    checkImageName(name);
    const b = this.files.get(name);
    if (!b) throw new NotFoundError(`${this.describe(name)} does not exist`);
    return b;
  }

  async read(name: string, maxBytes: number): Promise<Buffer> {
    const b = this.get(name);
    if (b.length > maxBytes) throw new InvalidArgumentError(`${this.describe(name)} is ${b.length} bytes, over the ${maxBytes}-byte limit`);
    return b;
  }

  async readRanges(name: string, ranges: readonly ByteRange[]): Promise<Buffer[]> {
    const b = this.get(name);
    checkRanges(this.describe(name), b.length, ranges);
    return ranges.map((r) => b.subarray(r.offset, r.offset + r.length));
  }

  async *stream(name: string): AsyncIterable<Buffer> {
    yield this.get(name);
  }
}
