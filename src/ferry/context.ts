// What every command gets: the global flags (as ctr's: -a/--address, -n/--namespace, with the
// same environment variables), where to write, and whether to print JSON.
import type { Command } from 'commander';

export const DEFAULT_ADDRESS = '/run/containerd/containerd.sock';
export const DEFAULT_NAMESPACE = 'default';

export interface Writable {
  write(s: string | Uint8Array): unknown;
  /** True when the stream is a terminal (progress bars are drawn only then). */
  isTTY?: boolean;
}

export interface GlobalOptions {
  address: string;
  namespace: string;
  json: boolean;
}

export class CliContext {
  /** The command being run, for error messages ("ferry checkpoint: ..."). Set by each command's action. */
  commandName = '';
  /** The exit status when the command succeeds (`ferry run` exits with its container's). */
  exitCode = 0;

  constructor(
    readonly stdout: Writable,
    readonly stderr: Writable,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static fromProcess(): CliContext {
    return new CliContext(process.stdout, process.stderr, process.env);
  }

  /** The global options as given on the command line (they may come before or after the command). */
  globals(cmd: Command): GlobalOptions {
    const o = cmd.optsWithGlobals() as { address?: string; namespace?: string; json?: boolean };
    return {
      address: stripUnixScheme(o.address ?? this.env.CONTAINERD_ADDRESS ?? DEFAULT_ADDRESS),
      namespace: o.namespace ?? this.env.CONTAINERD_NAMESPACE ?? DEFAULT_NAMESPACE,
      json: o.json ?? false,
    };
  }

  /** Prints a command's result: as one JSON document with --json, else as text lines. */
  print(globals: GlobalOptions, result: unknown, text: () => string): void {
    if (globals.json) this.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const t = text();
      if (t !== '') this.stdout.write(t.endsWith('\n') ? t : `${t}\n`);
    }
  }
}

function stripUnixScheme(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

/** Declares the global flags on the program. */
export function globalOptions(program: Command): void {
  program
    .option('-a, --address <path>', `containerd's socket (env CONTAINERD_ADDRESS; default ${DEFAULT_ADDRESS})`)
    .option('-n, --namespace <name>', `containerd namespace (env CONTAINERD_NAMESPACE; default ${DEFAULT_NAMESPACE})`)
    .option('--json', 'print machine-readable results (one JSON document)');
}
