import * as fs from 'node:fs';

/**
 * Reads the pid runc wrote with --pid-file. Synchronously, though callers await it: a 4-byte
 * local file read costs microseconds on the main thread, where fs.promises' open/fstat/read/close
 * are four round trips through libuv's threadpool on the exec's and start's critical path
 * (each one a thread wake-up, milliseconds on a loaded machine).
 */
export async function readPidFile(path: string): Promise<number> {
  const text = fs.readFileSync(path, 'utf8').trim();
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`invalid pid ${JSON.stringify(text)} in ${path}`);
  return pid;
}
