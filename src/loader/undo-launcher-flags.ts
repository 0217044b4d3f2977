// Imported first, for its effect, by the programs' entry (entry.ts) and by the cache producer
// (produce-cache.ts): the launcher's V8 flags are set back to their defaults before any builtin
// that Node did not load at start-up is required, so Node's code cache for it is taken
// (launcher-flags.ts says why). Its own imports are builtins loaded at start-up (fs, module, path).
import { undoLauncherFlags } from './launcher-flags';

undoLauncherFlags();
