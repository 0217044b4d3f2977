// zstd decompression of a large archive file on a worker thread. Staging a tar+zstd archive on
// the main thread left it busy decompressing (~half its time) while the threadpool wrote; GNU
// `tar --zstd` runs zstd as a second process and so gets a second core for it. The worker reads
// the archive's fd at explicit offsets (fds are per process: no second open, no path to race),
// decompresses with the same libzstd (zstd-napi) and window limit as zstdDecompress, and hands
// over 1 MiB chunks by transferring their memory (no copy). At most WORKER_CHUNKS_AHEAD chunks
// are handed over and not yet taken: the worker blocks on an Atomics counter beyond that, so
// memory stays bounded whatever the compression ratio. A chunk's memory comes back to the worker
// (over a MessagePort it polls with receiveMessageOnPort) once the reader and every write are
// done with it (chunk-leases.ts), and is decompressed into again: a fresh 1 MiB buffer per step
// cost 50-70 ms of CPU per 256 MiB. The worker allocates only when none has come back, so the
// bound above never depends on the main thread handing memory back.
import { workerThreads } from '../loader/on-first-use';
import { ChunkLeases } from './chunk-leases';
import { TarFormatError } from './tar-reader';

const WORKER_CHUNKS_AHEAD = 4;
const OUTPUT_CHUNK = 1 << 20;
const INPUT_CHUNK = 1 << 20;

// Plain JavaScript run with `eval`: the bundles stay one file each, and the worker loads only fs
// and zstd-napi's binding.
const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
const fs = require('node:fs');
const { fd, bindingPath, windowLogMax, outputChunk, inputChunk, ahead, returned } = workerData;
// [0]: chunks handed over and not yet taken; [1]: set when the main thread stops the worker.
const shared = new Int32Array(workerData.counter);
// Memory of chunks the main thread is done with (each came back transferred: only we hold it).
const free = [];
function nextOutput() {
  for (let m; (m = receiveMessageOnPort(returned)) !== undefined;) {
    if (m.message instanceof ArrayBuffer && m.message.byteLength === outputChunk) free.push(m.message);
  }
  const memory = free.pop();
  return memory === undefined ? Buffer.allocUnsafe(outputChunk) : Buffer.from(memory);
}
function run() {
  const binding = require(bindingPath);
  const dctx = new binding.DCtx();
  dctx.setParameter(binding.DParameter.windowLogMax, windowLogMax);
  const input = Buffer.allocUnsafe(inputChunk);
  let pos = 0;
  let inFrame = false;
  let dst = nextOutput();
  for (;;) {
    const got = fs.readSync(fd, input, 0, input.length, pos);
    if (got === 0) break;
    pos += got;
    let src = input.subarray(0, got);
    for (;;) {
      let step;
      try {
        step = dctx.decompressStream(dst, src);
      } catch (err) {
        return { formatError: err.message };
      }
      const [ret, produced, consumed] = step;
      src = src.subarray(consumed);
      const full = produced === dst.length;
      if (produced > 0) {
        for (let n; (n = Atomics.load(shared, 0)) >= ahead;) {
          if (Atomics.load(shared, 1) !== 0) return undefined;
          Atomics.wait(shared, 0, n, 1000);
        }
        Atomics.add(shared, 0, 1);
        parentPort.postMessage({ chunk: dst.buffer, length: produced, read: pos }, [dst.buffer]);
        dst = nextOutput();
      }
      if (src.length === 0 && (!full || ret === 0)) {
        inFrame = ret !== 0;
        break;
      }
    }
  }
  return inFrame ? { formatError: 'Stream ended in middle of compressed data frame' } : { done: true };
}
let last;
try {
  last = run();
} catch (err) {
  last = { error: String((err && err.message) || err), code: err && err.code };
}
if (last) parentPort.postMessage(last);
`;

type WorkerMessage =
  | { chunk: ArrayBuffer; length: number; read: number }
  | { formatError: string }
  | { error: string; code?: string }
  | { done: true };

export interface ZstdFileDecompression {
  /** The decompressed bytes, in order; errors of the content are TarFormatErrors ("zstd: ..."). */
  stream: AsyncIterable<Buffer>;
  /**
   * The stream's chunks' memory goes back to the worker through these: tell them when the
   * reader is done with a chunk (readTarEntries' onChunkDone), and retain what outlives that.
   */
  chunks: ChunkLeases;
  /** Stops the worker (whether or not the stream was read to its end); call it before closing the fd. */
  close(): Promise<void>;
}

/**
 * Decompresses the zstd file open at `fd` (from offset 0) on a worker thread. `onRead` gets the
 * compressed bytes read so far as chunks arrive.
 */
export function zstdDecompressFileInWorker(fd: number, windowLogMax: number, onRead?: (bytes: number) => void): ZstdFileDecompression {
  const counter = new SharedArrayBuffer(8);
  const shared = new Int32Array(counter);
  const { MessageChannel, Worker } = workerThreads();
  const { port1: returned, port2: giveBack } = new MessageChannel();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      fd, windowLogMax, counter, bindingPath: require.resolve('zstd-napi/binding'),
      outputChunk: OUTPUT_CHUNK, inputChunk: INPUT_CHUNK, ahead: WORKER_CHUNKS_AHEAD, returned,
    },
    transferList: [returned],
  });
  const chunks = new ChunkLeases((memory) => giveBack.postMessage(memory, [memory]));
  const queue: WorkerMessage[] = [];
  let wake: (() => void) | undefined;
  const push = (m: WorkerMessage): void => {
    queue.push(m);
    wake?.();
  };
  worker.on('message', push);
  worker.on('error', (err: Error) => push({ error: err.message }));
  worker.on('exit', (code) => push({ error: `zstd worker exited (code ${code}) before the end of the archive` }));
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    chunks.close();
    giveBack.close();
    // Wake a worker waiting for the main thread to take chunks, so that it stops at once.
    Atomics.store(shared, 1, 1);
    Atomics.notify(shared, 0);
    return (closed ??= worker.terminate().then(() => undefined));
  };

  async function* stream(): AsyncGenerator<Buffer> {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const m = queue.shift() as WorkerMessage;
      if ('chunk' in m) {
        Atomics.sub(shared, 0, 1);
        Atomics.notify(shared, 0);
        onRead?.(m.read);
        const chunk = Buffer.from(m.chunk, 0, m.length);
        chunks.lend(chunk);
        yield chunk;
      } else if ('formatError' in m) {
        throw new TarFormatError(`zstd: ${m.formatError}`);
      } else if ('error' in m) {
        throw Object.assign(new Error(`zstd decompression: ${m.error}`), m.code ? { code: m.code } : {});
      } else {
        return;
      }
    }
  }
  return { stream: stream(), chunks, close };
}
