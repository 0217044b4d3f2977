// Reading why a CRIU run failed from its log (dump.log, restore.log), for the shim's errors and
// ferry's. CRIU prints `(<seconds>) Error (<file>:<line>): <text>`; the first such line is usually
// the cause, but some are not: CRIU cannot raise its own RLIMIT_NOFILE without CAP_SYS_RESOURCE and
// says so as an Error before carrying on, and the last lines only repeat that the run failed. A log
// that ends without CRIU's own verdict means CRIU itself died (killed, or crashed) in the middle.

/** Error lines that neither stop a run nor say why it stopped. */
const NOT_THE_CAUSE = [/rlimit: Can't setup RLIMIT_NOFILE/, /(Dumping|Restoring|Pre-dumping) FAILED/, /failed with -1$/];

/** CRIU's last words on a run it finished itself, successfully or not. */
const VERDICT = /(Dumping|Restoring|Pre-dumping) FAILED|Dumping finished successfully|Restore finished successfully|Pre-dumping finished successfully/;

/**
 * The log line that says why the run failed: the first Error line that is a cause; else, when
 * CRIU never gave its verdict, that it stopped and the last line; else the first Error line, else
 * the last non-empty line. Undefined for an empty log.
 */
export function criuFailureLine(text: string): string | undefined {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) return undefined;
  const errors = lines.filter((l) => /\bError\b/.test(l));
  const cause = errors.find((l) => !NOT_THE_CAUSE.some((re) => re.test(l)));
  if (cause) return cause;
  const last = lines[lines.length - 1]!;
  if (!lines.some((l) => VERDICT.test(l))) return `CRIU stopped before it finished (killed or crashed); its log ends: ${last}`;
  return errors[0] ?? last;
}

/** The text of a log line without CRIU's `(00.090772) Error (criu/files-reg.c:1790): ` prefix and final period. */
export function criuMessage(line: string): string {
  return line.replace(/^\(\s*[\d.]+\)\s*(?:Error \([^)]*\):\s*)?/, '').trim().replace(/\.$/, '');
}
