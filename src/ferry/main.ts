// Entry point of `ferry`, the command that gives containerd Podman's checkpoint workflow:
// checkpoints that travel (Kubernetes, Podman and CRI-O archives, checkpoint OCI images),
// restore, migrate, and inspection without restoring. It talks to containerd's gRPC API only
// (src/ferry/containerd/, one file per containerd service), never to a shim.
//
// Each command lives in src/ferry/commands/<name>.ts and exports `register(program, ctx)`;
// the flags are declared beside their use, as in ctr's cmd/ctr/commands/*.
import { Command, CommanderError } from 'commander';
import { CliContext, globalOptions } from './context';
import { formatCliError } from './cli-error';
import { COMMANDS } from './commands';
import { FERRY_VERSION } from './version';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('ferry')
    .description('checkpoint, move, inspect and restore containers of containerd')
    .version(FERRY_VERSION, '-v, --version', 'print the version')
    .showHelpAfterError(false)
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
      // commander's own usage errors: one line, like every other ferry error.
      outputError: (s) => ctx.stderr.write(s.replace(/^error: /, 'ferry: ')),
    })
    .exitOverride();
  globalOptions(program);
  for (const register of COMMANDS) register(program, ctx);
  return program;
}

export async function main(argv: string[], ctx: CliContext = CliContext.fromProcess()): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through exitOverride with exit code 0.
      return err.exitCode === 0 ? 0 : 1;
    }
    ctx.stderr.write(`${formatCliError(err, ctx.commandName)}\n`);
    return 1;
  }
}
