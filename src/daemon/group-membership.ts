// Grouping: several containers share one shim daemon (runc-v2's `io.containerd.runc.v2.group`
// annotation, or FERRY_GROUP_BY_NAMESPACE). The Go shim has a race here: `start` for a new member
// connects to the group's socket and returns its address, and meanwhile the daemon — whose last
// task was just deleted — exits on Shutdown; the new container then fails to be created.
//
// ferry closes it with a join handshake on the daemon's own socket (private ttrpc service
// `ferry.group.v1.Group/Join`, payload: the container id as UTF-8):
//   - `start` asks to join; the daemon either refuses (it is already exiting) or records a
//     reservation for the id. A daemon holding a reservation does not exit on Shutdown.
//   - A reservation ends when Create for that id arrives (the task service then counts the
//     container), or after RESERVATION_TTL_MS if containerd never sends it.
//   - When the daemon decides to exit it first marks itself closing and unlinks its socket path,
//     synchronously, before anything else: a later `start` finds no socket (or a refusal) and
//     creates a new daemon on the same path; it can never be handed a dying one.
// `start`s of one group are serialised by a lock directory next to the socket, so two of them
// never both create a daemon, and a stale socket (a SIGKILLed daemon's) is removed safely.
import * as fs from 'node:fs';
import { UnavailableError } from '../errors';
import { checkId } from '../service/request-checks';
import type { RawHandler, RawService } from '../protocol/rpc';
import { TtrpcClient } from '../protocol/ttrpc/client';

export const GROUP_SERVICE = 'ferry.group.v1.Group';
/** How long a member may take between its `start` and its Create. */
export const RESERVATION_TTL_MS = 60_000;

export class GroupMembership {
  private readonly reservations = new Map<string, NodeJS.Timeout>();
  private closingFlag = false;

  /** @param onExpired called when a reservation expires and nothing else keeps the daemon alive. */
  constructor(private readonly onExpired: () => void) {}

  get pending(): number { return this.reservations.size; }
  get closing(): boolean { return this.closingFlag; }

  reserve(id: string): void {
    if (this.closingFlag) throw new UnavailableError('shim is shutting down');
    const old = this.reservations.get(id);
    if (old) clearTimeout(old);
    const timer = setTimeout(() => {
      this.reservations.delete(id);
      this.onExpired();
    }, RESERVATION_TTL_MS);
    timer.unref();
    this.reservations.set(id, timer);
  }

  release(id: string): void {
    const t = this.reservations.get(id);
    if (t) clearTimeout(t);
    this.reservations.delete(id);
  }

  /** Marks the daemon as exiting and unlinks its socket path, so no `start` can join it any more. */
  close(socketPath: string): void {
    this.closingFlag = true;
    for (const t of this.reservations.values()) clearTimeout(t);
    this.reservations.clear();
    if (socketPath) fs.rmSync(socketPath, { force: true });
  }

  /** The Join service served next to the task service. */
  service(): RawService {
    return {
      name: GROUP_SERVICE,
      methods: {
        Join: async (payload) => {
          const id = payload.toString('utf8');
          checkId('container id', id);
          this.reserve(id);
          return Buffer.alloc(0);
        },
      },
    };
  }

  /**
   * Wraps the task services' Create and Shutdown so a reservation ends once the task service
   * counts the container (TaskService.create marks the id as creating synchronously, before its
   * first await), or when containerd shuts that id down without ever creating it (a failed
   * create, or a `start` that containerd gave up on) — else Shutdown would wait for the TTL.
   * Both requests carry the container id as field 1, so one decoder serves both.
   */
  wrapCreateAndShutdown(services: RawService[], decodeId: (payload: Buffer) => string): RawService[] {
    const releasing = (method: RawHandler | undefined): RawHandler | undefined => method && ((payload, ctx) => {
      try { this.release(decodeId(payload)); } catch { /* undecodable: the call fails on its own */ }
      return method(payload, ctx);
    });
    return services.map((s) => {
      const methods = { ...s.methods };
      for (const name of ['Create', 'Shutdown']) {
        const wrapped = releasing(methods[name]);
        if (wrapped) methods[name] = wrapped;
      }
      return { name: s.name, methods };
    });
  }
}

export type JoinResult = 'joined' | 'refused' | 'absent' | 'stale';

/** `start`'s side: asks the daemon at socketPath to take container `id`. */
export async function joinGroup(socketPath: string, id: string): Promise<JoinResult> {
  let client: TtrpcClient;
  try {
    client = await TtrpcClient.connect(socketPath, 5000);
  } catch (err) {
    const msg = (err as Error).message;
    if (/ENOENT/.test(msg)) return 'absent';
    if (/ECONNREFUSED/.test(msg)) return 'stale';
    throw err;
  }
  try {
    await client.call(GROUP_SERVICE, 'Join', Buffer.from(id, 'utf8'), { timeoutMs: 5000 });
    return 'joined';
  } catch {
    // Refused because it is exiting (it has unlinked its socket already), or a daemon that does
    // not know the handshake: either way, not one to hand to containerd.
    return 'refused';
  } finally {
    client.close();
  }
}

const LOCK_STALE_MS = 10_000;

/** Serialises the `start`s of one group: a lock directory beside the socket (mkdir is atomic). */
export async function withStartLock<T>(socketPath: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${socketPath}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      fs.mkdirSync(lock, { mode: 0o700 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        // A `start` killed while holding the lock leaves it behind.
        if (Date.now() - fs.statSync(lock).mtimeMs > LOCK_STALE_MS) fs.rmdirSync(lock);
      } catch { /* released meanwhile */ }
      await new Promise((r) => setTimeout(r, Math.min(50, 5 + attempt)));
    }
  }
  try {
    return await fn();
  } finally {
    try { fs.rmdirSync(lock); } catch { /* ignore */ }
  }
}
