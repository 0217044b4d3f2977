// How the daemon's process is tuned for a long life. A grouped daemon serves thousands of calls;
// measured (docs/reliability.md: 10-20 containers in one group, `ctr task exec` 8 at a time) its
// RSS grew ~25 MiB from exec #100 to #2000 while its live heap after a forced GC stayed flat
// (~11.5 MiB; heap snapshots differ only by JIT code): nothing leaked, but
//   - V8's young generation grew its semi-spaces to their 16 MiB default maximum and kept the
//     pages; the launcher's --max-semi-space-size=1 caps them (shim/containerd-shim-ferry-v2);
//   - with young objects promoted sooner, garbage then piled up in old space (13 → 33 MiB of V8
//     pages before a mark-compact gave it back): V8 lets the old generation grow by up to 4× its
//     live size between full GCs, but by 1.3× when the old space is capped at 256 MiB (its heap
//     controller's "small heap" factor) — the launcher's --max-old-space-size=256, some 20× what
//     a daemon with 50 containers holds. (Node flags live in the launcher: V8 refuses a code
//     cache made under other flags, so they cannot be added here for the daemon alone.)
//   - glibc gave each thread that malloc()s (V8's GC helpers, libuv's threadpool) an arena of
//     its own, ~2 MiB each once used; two arenas serve the daemon's few threads. That one is an
//     environment variable, which glibc reads when the process starts: `start` goes on as the
//     daemon, so the launcher sets MALLOC_ARENA_MAX=2 for it (unless the administrator set it)
//     and names what it added in FERRY_DAEMON_ADDED_ENV.

/** Names the variables the launcher added, so the daemon can take exactly those away again. */
export const ADDED_ENV_KEY = 'FERRY_DAEMON_ADDED_ENV';

/** Run first in the daemon: runc, CRIU and loggers get containerd's environment as it was. */
export function dropAddedEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const k of (env[ADDED_ENV_KEY] ?? '').split(',')) if (k) delete env[k];
  delete env[ADDED_ENV_KEY];
}
