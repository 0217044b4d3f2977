// Runs a TypeScript snippet in a node process of its own, bundled with esbuild the way the shim
// is (so the bundle must find the native addon as dist/ does). For tests that change process-wide
// state — becoming a child subreaper, spawning and reaping — or that need a clean exit.
import { execFileSync } from 'child_process';
import { buildSync } from 'esbuild';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '../..');

/**
 * Bundles `source`, whose relative imports resolve from `src/<srcDir>`, runs it and returns its
 * stdout (a non-zero exit or the timeout throws, with its stderr); `nodeArgs` go before the script.
 */
export function runBundledScript(srcDir: string, name: string, source: string, timeoutMs: number, nodeArgs: string[] = []): string {
  const outfile = path.join(root, 'build', 'test-scripts', `${name}-${process.pid}.js`);
  buildSync({
    stdin: { contents: source, resolveDir: path.join(root, 'src', srcDir), loader: 'ts', sourcefile: `${name}-script.ts` },
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile, logLevel: 'error',
  });
  try {
    return execFileSync(process.execPath, [...nodeArgs, outfile], { encoding: 'utf8', timeout: timeoutMs });
  } finally {
    fs.rmSync(outfile, { force: true });
  }
}
