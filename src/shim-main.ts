// Entry point of containerd-shim-ferry-v2. The action decides what runs:
//   start   print the address of a (new or shared) daemon and exit — containerd's critical path
//   delete  clean up a bundle whose daemon is gone, print a DeleteResponse
//   (none)  the daemon itself, from its own bundle (dist/shim-daemon.js): `start` and `delete`
//           never compile grpc-js, winston or the task service.
// dist/shim-entry.js loads this bundle and calls main(); see src/loader/.
import * as path from 'node:path';
import { parseFlags } from './shim-actions/flags';
import { loadBundle } from './loader/code-cache';

export const VERSION = '0.1.0';
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
  switch (flags.action) {
    case 'start': {
      const { start } = await import('./shim-actions/start');
      const text = await start(flags, process.argv[1]);
      process.stdout.write(text, () => process.exit(0));
      return;
    }
    case 'delete': {
      const { deleteBundle } = await import('./shim-actions/delete');
      const out = await deleteBundle(flags);
      process.stdout.write(out, () => process.exit(0));
      return;
    }
    case '': {
      const { runDaemon } = loadBundle(path.join(__dirname, DAEMON_BUNDLE)) as typeof import('./daemon/daemon');
      await runDaemon(flags);
      return;
    }
    default:
      process.stderr.write(`unknown action ${JSON.stringify(flags.action)}\n`);
      process.exit(2);
  }
}

