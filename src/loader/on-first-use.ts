// Node builtins the shim daemon needs only on some paths, loaded when first used rather than at
// start. A builtin is compiled on its first require (with its own dependencies), and the daemon
// starts on containerd's critical path: child_process (the fork fallback, binary loggers,
// `criu --version`), worker_threads (zstd staging), zlib (gzip archives), tty (consoles) and v8
// (diagnostics) together cost ~17-20 ms of CPU per daemon start here, for paths most containers
// never take (docs/benchmarks.md, Round 5). A type-only `import type` stays free.
/* eslint-disable @typescript-eslint/no-require-imports */

export function childProcess(): typeof import('node:child_process') {
  return require('node:child_process') as typeof import('node:child_process');
}

export function workerThreads(): typeof import('node:worker_threads') {
  return require('node:worker_threads') as typeof import('node:worker_threads');
}

export function zlib(): typeof import('node:zlib') {
  return require('node:zlib') as typeof import('node:zlib');
}

export function tty(): typeof import('node:tty') {
  return require('node:tty') as typeof import('node:tty');
}

export function v8(): typeof import('node:v8') {
  return require('node:v8') as typeof import('node:v8');
}
