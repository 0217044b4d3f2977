// `ferry run --checkpoint (FILE|REF) [-d] [--rm] [--runtime R] [ID]`: what `ctr run --checkpoint`
// would be if ctr had the flag. The checkpoint is restored (as `ferry restore`) as container ID
// (default: the checkpoint's container name). Without -d, ferry stays attached to the restored
// process's stdout and stderr, forwards SIGINT/SIGTERM/SIGHUP to it, and exits with its exit
// status, as `ctr run` does; --rm then removes the container afterwards.
import * as path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors';
import { callTasks, Connection } from '../containerd';
import type { CliContext } from '../context';
import { AttachedIO } from '../restore/attached-io';
import { stateRoot } from '../restore/container-state';
import { removeContainer } from '../restore/remove-container';
import { restoreCheckpoint, FERRY_RUNTIME } from '../restore/restore';
import { checkRegistryFlags, cliLog, pullFor, registryOptions, sourceOf, sourceProgress, type RegistryFlags } from './restore-shared';
import { restoreText } from './restore';

interface RunFlags extends RegistryFlags {
  checkpoint?: string;
  detach?: boolean;
  rm?: boolean;
  runtime: string;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const SIGNAL_NUMBERS: Record<(typeof FORWARDED)[number], number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

export function registerRun(program: Command, ctx: CliContext): void {
  registryOptions(program
    .command('run')
    .description('restore a checkpoint as a new container and run it (attached, as ctr run, unless -d)')
    .argument('[id]', "id of the new container (default: the checkpoint's container name)")
    .requiredOption('--checkpoint <file|ref>', 'checkpoint archive file or checkpoint image reference')
    .option('-d, --detach', 'leave it running in the background')
    .option('--rm', 'remove the container when it exits')
    .option('--runtime <name>', 'runtime of the container', FERRY_RUNTIME))
    .action(async (id: string | undefined, flags: RunFlags, cmd: Command) => {
      ctx.commandName = 'run';
      const g = ctx.globals(cmd);
      if (flags.detach && flags.rm) throw new InvalidArgumentError('--detach and --rm cannot be given together');
      const source = sourceOf(flags.checkpoint!);
      const conn = new Connection(g.address, g.namespace);
      const root = stateRoot(ctx.env);
      const progress = sourceProgress(ctx, g, source);
      let io: AttachedIO | undefined;
      try {
        await checkRegistryFlags(conn, flags);
        if (!flags.detach) io = await AttachedIO.open(path.join(root, 'fifo'), id ?? 'run', ctx.stdout, ctx.stderr);
        const result = await restoreCheckpoint(conn, {
          source, name: id, runtime: flags.runtime, pull: pullFor(flags, progress.progress), stateRoot: root, log: cliLog(ctx), onProgress: progress.update,
          ...(io ? { stdio: { stdout: io.stdout, stderr: io.stderr } } : {}),
        });
        progress.progress.stop();
        if (!io) {
          ctx.print(g, result, () => result.id);
          return;
        }
        io.released();
        const forward = FORWARDED.map((sig) => {
          const handler = () => { void callTasks(conn, 'kill', { containerId: result.id, execId: '', signal: SIGNAL_NUMBERS[sig], all: false }).catch(() => undefined); };
          process.on(sig, handler);
          return () => process.off(sig, handler);
        });
        let status: number;
        try {
          // No deadline: the container runs as long as it runs.
          status = (await callTasks(conn, 'wait', { containerId: result.id, execId: '' }, { timeoutMs: 2 ** 31 - 1 })).exitStatus;
        } finally {
          for (const off of forward) off();
        }
        await io.drained(10000);
        if (flags.rm) await removeContainer(conn, result.id);
        else await callTasks(conn, 'delete', { containerId: result.id }).catch(() => undefined);
        if (g.json) ctx.print(g, { ...result, exitStatus: status }, () => restoreText(result));
        ctx.exitCode = status;
      } finally {
        progress.progress.stop();
        await io?.close();
        conn.close();
      }
    });
}
