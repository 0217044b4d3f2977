// The first JavaScript a ferry program runs (dist/shim-entry.js, dist/ferry-entry.js: one
// source, bundled twice by contrib/bundle.js with FERRY_PROGRAM set). The launcher in shim/
// (or $PREFIX/bin) execs node on this file; it loads the program's bundle beside it through the
// code cache and runs its main(argv). Kept tiny: it is compiled from source on every start.
// First: before code-cache.ts requires vm, which Node did not load at start-up.
import './undo-launcher-flags';
import * as path from 'node:path';
import { loadBundle } from './code-cache';

declare const FERRY_PROGRAM: string;
/** What errors are prefixed with: the command's name. */
declare const FERRY_NAME: string;

interface Program { main(argv: string[]): Promise<number | void> }

const program = loadBundle(path.join(__dirname, FERRY_PROGRAM)) as Program;
program.main(process.argv.slice(2)).then((code) => {
  if (typeof code === 'number') process.exitCode = code;
}, (err: Error) => {
  process.stderr.write(`${FERRY_NAME}: ${err.message}\n`);
  process.exit(1);
});
