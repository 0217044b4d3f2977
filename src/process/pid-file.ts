import { promises as fsp } from 'node:fs';

/** Reads the pid runc wrote with --pid-file. */
export async function readPidFile(path: string): Promise<number> {
  const text = (await fsp.readFile(path, 'utf8')).trim();
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`invalid pid ${JSON.stringify(text)} in ${path}`);
  return pid;
}
