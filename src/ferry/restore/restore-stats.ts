// CRIU's restore statistics (`stats-restore`, a CRIU service image with one stats_entry, written
// into the work dir), for `--print-stats`: decoded by the shared CRIU image reader.
import { NotFoundError } from '../../errors';
import { DirImageStore } from '../../format/criu/image-store';
import { readStats } from '../../format/criu/images';
import { ArchiveFile } from '../../format/layout';

export interface RestoreStats {
  /** Microseconds. */
  forkingTime: number;
  restoreTime: number;
  pagesCompared: number;
  pagesSkippedCow: number;
  pagesRestored: number;
}

/** The statistics of the restore whose CRIU work dir is `workDir`, or undefined when CRIU wrote none. */
export async function readRestoreStats(workDir: string): Promise<RestoreStats | undefined> {
  let entry;
  try {
    entry = await readStats(new DirImageStore(workDir), ArchiveFile.statsRestore);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const r = entry.restore;
  if (!r) return undefined;
  return {
    forkingTime: r.forkingTime,
    restoreTime: r.restoreTime,
    pagesCompared: Number(r.pagesCompared),
    pagesSkippedCow: Number(r.pagesSkippedCow),
    pagesRestored: Number(r.pagesRestored ?? 0n),
  };
}
