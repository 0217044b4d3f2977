// Entry point of containerd-shim-ferry-v2. The action decides what runs:
//   start   answer the address of a (new or shared) daemon — containerd's critical path — and,
//           for a new one, go on as that daemon, from its own bundle (dist/shim-daemon.js)
//           loaded only then: a group join never compiles the task service or grpc-js
//   delete  clean up a bundle whose daemon is gone, print a DeleteResponse (the launcher
//           answers itself when the daemon already cleaned up)
// dist/shim-entry.js loads this bundle and calls main(); see src/loader/.
import * as path from 'node:path';
import { parseFlags } from './shim-actions/flags';
import { loadBundleWith } from './loader/code-cache';
import { cacheLearner, learnedCacheDirFromEnv } from './loader/learned-cache';
import { detachSession } from './sys/native';

export const VERSION = '0.1.0';
/** Set by the launcher for `start` (shim/containerd-shim-ferry-v2). */
const SHIM_ACTION_ENV = 'FERRY_SHIM_ACTION';
/** The daemon's bundle, beside this one (contrib/bundle.js). */
export const DAEMON_BUNDLE = 'shim-daemon.js';

export async function main(argv: string[]): Promise<void> {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  if (flags.version) {
    process.stdout.write(`containerd-shim-ferry-v2:\n  Version: ${VERSION}\n  Runtime: io.containerd.ferry.v2\n`);
    return;
  }
  // The launcher runs `start` without the action in argv (the daemon it becomes shows the Go
  // shim's daemon command line) and says so here; the variable must not reach runc.
  const launchedStart = process.env[SHIM_ACTION_ENV] === 'start';
  delete process.env[SHIM_ACTION_ENV];
  const action = launchedStart && flags.action === '' ? 'start' : flags.action;
  if (action === 'start' && !launchedStart) {
    process.stderr.write('start is run through the launcher (shim/containerd-shim-ferry-v2), which waits for its answer\n');
    process.exit(2);
  }
  switch (action) {
    case 'start': {
      // Run by the launcher in the background (shim/containerd-shim-ferry-v2): the answer goes
      // to it with a status line; an error thrown here is printed by the entry without one.
      const { start, answerStart } = await import('./shim-actions/start');
      const result = await start(flags);
      answerStart(result.text, 0);
      if (!result.daemon) process.exit(0);
      detachSession();
      const learnedDir = learnedCacheDirFromEnv();
      const notUsed: string[] = [];
      const loaded = loadBundleWith(path.join(__dirname, DAEMON_BUNDLE), { learnedCacheDir: learnedDir ?? undefined, why: (r) => notUsed.push(r) });
      const { runDaemon } = loaded.exports as typeof import('./daemon/daemon');
      await runDaemon(flags, result.daemon, learnedDir ? cacheLearner(loaded, learnedDir, notUsed) : undefined);
      return;
    }
    case 'delete': {
      const { deleteBundle } = await import('./shim-actions/delete');
      const out = await deleteBundle(flags);
      process.stdout.write(out, () => process.exit(0));
      return;
    }
    case '':
      process.stderr.write('the shim daemon is started by `start` only\n');
      process.exit(2);
      return;
    default:
      process.stderr.write(`unknown action ${JSON.stringify(action)}\n`);
      process.exit(2);
  }
}

