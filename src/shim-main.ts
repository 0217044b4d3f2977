// Entry point of containerd-shim-ferry-v2. The action decides what runs:
//   start   print the address of a (new or shared) daemon and exit — containerd's critical path
//   delete  clean up a bundle whose daemon is gone, print a DeleteResponse
//   (none)  the daemon itself
// Modules are required lazily so `start` loads only what it needs.
import { parseFlags } from './shim-actions/flags';

export const VERSION = '0.1.0';

async function main(argv: string[]): Promise<void> {
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
      const { runDaemon } = await import('./daemon/daemon');
      await runDaemon(flags);
      return;
    }
    default:
      process.stderr.write(`unknown action ${JSON.stringify(flags.action)}\n`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`containerd-shim-ferry-v2: ${err.message}\n`);
  process.exit(1);
});
