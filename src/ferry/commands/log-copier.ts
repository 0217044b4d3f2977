// `ferry log-copier STATE_DIR` (hidden): drains a restored container's stdout and stderr FIFOs into
// its container.log; started detached by `ferry restore` (src/ferry/restore/log-copier.ts).
import type { Command } from 'commander';
import type { CliContext } from '../context';
import { LOG_COPIER_COMMAND, runLogCopier } from '../restore/log-copier';

export function registerLogCopier(program: Command, ctx: CliContext): void {
  program
    .command(LOG_COPIER_COMMAND, { hidden: true })
    .argument('<state-dir>')
    .action(async (stateDir: string) => {
      ctx.commandName = LOG_COPIER_COMMAND;
      await runLogCopier(stateDir);
    });
}
