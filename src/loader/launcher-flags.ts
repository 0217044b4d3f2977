// The V8 flags the launchers put on node's command line, and setting them back to V8's defaults.
// The shim's launcher runs node with heap limits and --expose-gc (shim/containerd-shim-ferry-v2,
// node_flags). Those act once: the heap limits when V8 makes the isolate, gc() when Node makes the
// context. But any V8 flag that is not at its default changes V8's flag hash, and V8 refuses every
// code cache made under another hash, Node's own for its builtins too: with the flags left as they
// are, each builtin the daemon requires after start-up (net, child_process, fs/promises, vm, …)
// is compiled from source, ~55 M instructions of a daemon's life (docs/benchmarks.md, Round 7).
// Set back first thing (undo-launcher-flags.ts), the hash is a plain node's again while the heap
// keeps its limits and gc() stays; contrib/bundle.js makes ferry's own caches in that same state.
import { setV8Flags } from '../sys/native';

/**
 * Each V8 flag a launcher gives node, by name, and the flag that sets it back to V8's default.
 * A flag not listed here (one in FERRY_NODE_OPTIONS, say) is left as it is: it costs start-up
 * time, never correctness.
 */
export const LAUNCHER_FLAG_DEFAULTS: ReadonlyMap<string, string> = new Map([
  ['--max-semi-space-size', '--max-semi-space-size=0'],
  ['--max-old-space-size', '--max-old-space-size=0'],
  ['--expose-gc', '--no-expose-gc'],
]);

/** The flags that set the launcher flags among `execArgv` back to their defaults ('' for none). */
export function defaultsFor(execArgv: readonly string[]): string {
  const undo = new Set<string>();
  for (const arg of execArgv) {
    // V8 takes --max_old_space_size as --max-old-space-size.
    const back = LAUNCHER_FLAG_DEFAULTS.get(arg.split('=', 1)[0]!.replace(/_/g, '-'));
    if (back !== undefined) undo.add(back);
  }
  return [...undo].join(' ');
}

/**
 * Sets this process's launcher flags back to V8's defaults. Where it cannot (no addon beside the
 * program, a node without V8's function) the flags stay: that costs the time they cost before.
 */
export function undoLauncherFlags(): void {
  const flags = defaultsFor(process.execArgv);
  if (!flags) return;
  try {
    setV8Flags(flags);
  } catch {
    /* no addon: the flags stay */
  }
}
