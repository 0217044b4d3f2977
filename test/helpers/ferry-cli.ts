// Runs the `ferry` command (shim/ferry → dist/ferry.js, as `make build` leaves it) against a
// test containerd: -a/-n are that containerd's socket and namespace.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { collect, Containerd, CtrResult, REPO_ROOT } from './containerd';

export const FERRY_CLI = path.join(REPO_ROOT, 'shim', 'ferry');

export interface FerryRunOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Omit -a/-n (to test the defaults and the environment variables). */
  noGlobals?: boolean;
}

/** `ferry -a <socket> -n <namespace> ARGS...` to completion. */
export function runFerry(c: Pick<Containerd, 'address' | 'namespace'> | undefined, args: string[], opts: FerryRunOptions = {}): Promise<CtrResult> {
  const globals = c && !opts.noGlobals ? ['-a', c.address, '-n', c.namespace] : [];
  const child = spawn(process.execPath, [FERRY_CLI, ...globals, ...args], {
    env: { ...process.env, ...(opts.env ?? {}) },
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  return collect(child, { input: opts.input, timeoutMs: opts.timeoutMs ?? 120000 });
}

/** Runs ferry with --json and parses its stdout; throws with stderr when it failed. */
export async function runFerryJson<T = unknown>(c: Pick<Containerd, 'address' | 'namespace'>, args: string[], opts: FerryRunOptions = {}): Promise<T> {
  const r = await runFerry(c, ['--json', ...args], opts);
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
