// Reading a FIFO the way containerd's client does in the delivery tests: a non-blocking read end,
// read with readSync when the test chooses, or a blocking open as the client's goroutine makes.
import * as fs from 'node:fs';
import * as path from 'node:path';

const { O_WRONLY, O_NONBLOCK } = fs.constants;

/** Reads what is in a non-blocking FIFO reader now, at most `max` bytes (EAGAIN: nothing yet). */
export function readNow(fd: number, max = 1 << 20): Buffer {
  const buf = Buffer.alloc(max);
  try {
    return buf.subarray(0, fs.readSync(fd, buf, 0, max, null));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return Buffer.alloc(0);
    throw err;
  }
}

/** A blocking open for reading, as the client's goroutine does; fails after `ms` without a writer. */
export async function openWhenWritten(fifo: string, ms: number): Promise<fs.promises.FileHandle> {
  const opened = fs.promises.open(fifo, 'r');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  const handle = await Promise.race([opened, timedOut]);
  clearTimeout(timer);
  if (handle !== 'timeout') return handle;
  fs.closeSync(fs.openSync(fifo, O_WRONLY | O_NONBLOCK)); // releases the blocked open, as containerd's fifo.Close does
  await (await opened).close();
  throw new Error(`nothing ever opened ${path.basename(fifo)} for writing: the output is lost`);
}
