// What a failed CRIU run's log says went wrong, in one line for the error the user reads.
// CRIU prefixes errors `Error (file:line):`; the first one is the cause (what follows is the
// unwinding: "Dumping FAILED.", "Can't dump page with parasite", ...). Some errors CRIU logs and
// carries on from; quoting them would hide the cause, so they are passed over. A log that ends
// without CRIU's own verdict means CRIU itself died (killed, or crashed) in the middle.
import { promises as fsp } from 'node:fs';

/** Errors CRIU logs and then carries on from (seen in every log of a shim that cannot raise RLIMIT_NOFILE). */
const NOT_THE_CAUSE = [/rlimit: Can't setup RLIMIT_NOFILE for self/];

/** CRIU's last words on a run it finished itself, successfully or not. */
const VERDICT = /(Dumping|Restoring|Pre-dumping) FAILED|Dumping finished successfully|Restore finished successfully|Pre-dumping finished successfully/;

/** The line of a CRIU log that says why the run failed, or undefined without a log. */
export async function criuFailureLine(logPath: string): Promise<string | undefined> {
  let text: string;
  try { text = await fsp.readFile(logPath, 'utf8'); } catch { return undefined; }
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) return 'CRIU wrote an empty log';
  const cause = lines.find((l) => /\bError\b/.test(l) && !NOT_THE_CAUSE.some((re) => re.test(l)));
  if (cause) return cause;
  const last = lines[lines.length - 1]!;
  if (!lines.some((l) => VERDICT.test(l))) return `CRIU stopped before it finished (killed or crashed); its log ends: ${last}`;
  return last;
}
