// `ferry restore (--import FILE | --image REF) [--name NEW] [--runtime R] [--tcp-established]
// [--file-locks] [--print-stats]`: a checkpoint of containerd's CRI, Podman, CRI-O or ferry becomes a running
// container of this containerd (src/ferry/restore/restore.ts does the work).
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors';
import { Connection } from '../containerd';
import type { CliContext } from '../context';
import { restoreCheckpoint, FERRY_RUNTIME, type RestoreResult, type RestoreSource } from '../restore/restore';
import { stateRoot } from '../restore/container-state';
import type { RestoreStats } from '../restore/restore-stats';
import { checkRegistryFlags, cliLog, pullFor, registryOptions, sourceProgress, type RegistryFlags } from './restore-shared';

interface RestoreFlags extends RegistryFlags {
  import?: string;
  image?: string;
  name?: string;
  runtime: string;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  printStats?: boolean;
}

export function formatRestoreStats(s: RestoreStats): string {
  return [
    'CRIU restore statistics',
    `  forking time:        ${s.forkingTime} us`,
    `  restore time:        ${s.restoreTime} us`,
    `  pages compared:      ${s.pagesCompared}`,
    `  pages skipped (COW): ${s.pagesSkippedCow}`,
    `  pages restored:      ${s.pagesRestored}`,
  ].join('\n');
}

export function restoreText(r: RestoreResult): string {
  const lines = [`restored ${r.id} (${r.engine} checkpoint of ${r.checkpointName}, image ${r.image}${r.imagePulled ? ', pulled' : ''}) into ${r.runtime}, pid ${r.pid}`];
  if (r.stats) lines.push(formatRestoreStats(r.stats));
  return lines.join('\n');
}

export function parseSource(flags: { import?: string; image?: string }): RestoreSource {
  if (flags.import && flags.image) throw new InvalidArgumentError('give --import FILE or --image REF, not both');
  if (flags.import) return { kind: 'archive', path: flags.import };
  if (flags.image) return { kind: 'image', ref: flags.image };
  throw new InvalidArgumentError('nothing to restore: give --import FILE or --image REF');
}

export function registerRestore(program: Command, ctx: CliContext): void {
  registryOptions(program
    .command('restore')
    .description('restore a checkpoint archive (containerd CRI, Podman, CRI-O, ferry) or checkpoint image as a running container')
    .option('-i, --import <file>', 'checkpoint archive (tar, tar+gzip, tar+zstd)')
    .option('--image <ref>', 'checkpoint OCI image (pulled through containerd when not local)')
    .option('--name <id>', "id of the restored container (default: the checkpoint's container name)")
    .option('--runtime <name>', 'runtime of the restored container', FERRY_RUNTIME)
    .option('--tcp-established', 'restore established TCP connections')
    .option('--file-locks', 'restore the file locks the checkpoint holds (CRIU drops them without it)')
    .option('--print-stats', "print CRIU's restore statistics"))
    .action(async (flags: RestoreFlags, cmd: Command) => {
      ctx.commandName = 'restore';
      const g = ctx.globals(cmd);
      const source = parseSource(flags);
      const conn = new Connection(g.address, g.namespace);
      const progress = sourceProgress(ctx, g, source);
      try {
        await checkRegistryFlags(conn, flags);
        const result = await restoreCheckpoint(conn, {
          source, name: flags.name, runtime: flags.runtime, tcpEstablished: flags.tcpEstablished, fileLocks: flags.fileLocks, pull: pullFor(flags, progress.progress),
          stateRoot: stateRoot(ctx.env), log: cliLog(ctx), onProgress: progress.update, collectStats: flags.printStats,
        });
        progress.progress.stop();
        if (flags.printStats && !result.stats) result.warnings.push('CRIU wrote no restore statistics');
        ctx.print(g, result, () => restoreText(result));
      } finally {
        progress.progress.stop();
        conn.close();
      }
    });
}
