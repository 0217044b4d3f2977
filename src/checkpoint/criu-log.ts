// The shim's reading of a failed CRIU run's log file, in one line for the error the user reads
// (the rule itself is shared with ferry: src/format/criu/dump-log.ts).
import { promises as fsp } from 'node:fs';
import { criuFailureLine as failureLineOf } from '../format/criu/dump-log';

/** The line of a CRIU log file that says why the run failed, or undefined without a log. */
export async function criuFailureLine(logPath: string): Promise<string | undefined> {
  let text: string;
  try { text = await fsp.readFile(logPath, 'utf8'); } catch { return undefined; }
  return failureLineOf(text) ?? 'CRIU wrote an empty log';
}
