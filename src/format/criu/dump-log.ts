// Reading why a CRIU dump failed from its log (dump.log), for the shim's errors and ferry's.
// CRIU prints `(<seconds>) Error (<file>:<line>): <text>`; the first such line is usually the
// cause, but some are not: CRIU cannot raise its own RLIMIT_NOFILE without CAP_SYS_RESOURCE and
// says so as an Error before carrying on, and the last lines only repeat that the dump failed.

/** Error lines that neither stop a dump nor say why it stopped. */
const NOT_THE_CAUSE = [/rlimit: Can't setup RLIMIT_NOFILE/, /Dumping FAILED/, /failed with -1$/];

/**
 * The log line that says why the dump failed: the first Error line that is a cause, else the
 * first Error line, else the last non-empty line. Undefined for an empty log.
 */
export function criuFailureLine(text: string): string | undefined {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /\bError\b/.test(l));
  return errors.find((l) => !NOT_THE_CAUSE.some((re) => re.test(l))) ?? errors[0] ?? lines[lines.length - 1];
}

/** The text of a log line without CRIU's `(00.090772) Error (criu/files-reg.c:1790): ` prefix and final period. */
export function criuMessage(line: string): string {
  return line.replace(/^\(\s*[\d.]+\)\s*(?:Error \([^)]*\):\s*)?/, '').trim().replace(/\.$/, '');
}
