// The --export file: written under a temporary name beside it (mode 0600, O_EXCL) and put in
// place only when complete, so a failed or interrupted export never leaves a partial archive
// under the user's name — and never replaces an existing file unless --force said so (then by an
// atomic rename; without --force by link(2), which fails if the name was taken meanwhile).
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../errors';

export class OutputFile {
  private constructor(readonly finalPath: string, readonly tempPath: string, private readonly force: boolean) {}

  /**
   * Checks the destination before any work is done: its directory exists, it is not a
   * directory, and (without force) nothing exists there yet.
   */
  static async prepare(file: string, force: boolean): Promise<OutputFile> {
    const finalPath = path.resolve(file);
    const dir = path.dirname(finalPath);
    const dirStat = await fsp.stat(dir).catch(() => undefined);
    if (!dirStat) throw new NotFoundError(`cannot write ${file}: directory ${dir} does not exist`);
    if (!dirStat.isDirectory()) throw new InvalidArgumentError(`cannot write ${file}: ${dir} is not a directory`);
    const existing = await fsp.lstat(finalPath).catch(() => undefined);
    if (existing?.isDirectory()) throw new InvalidArgumentError(`cannot write ${file}: it is a directory`);
    if (existing && !force) throw new AlreadyExistsError(`${file} already exists (use --force to replace it)`);
    const tempPath = path.join(dir, `.${path.basename(finalPath)}.ferry-${process.pid}-${randomBytes(4).toString('hex')}`);
    return new OutputFile(finalPath, tempPath, force);
  }

  /** Opens the temporary file for writing: new, 0600. */
  async open(): Promise<fsp.FileHandle> {
    return fsp.open(this.tempPath, 'wx', 0o600);
  }

  /** Puts the finished file in place. */
  async commit(): Promise<void> {
    if (this.force) {
      await fsp.rename(this.tempPath, this.finalPath);
      return;
    }
    try {
      await fsp.link(this.tempPath, this.finalPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`${this.finalPath} appeared while the archive was written; it was left alone`);
      throw err;
    } finally {
      await fsp.unlink(this.tempPath).catch(() => undefined);
    }
  }

  /** Removes the temporary file (after a failure). */
  async discard(): Promise<void> {
    await fsp.unlink(this.tempPath).catch(() => undefined);
  }
}
