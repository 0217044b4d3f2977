// `ferry checkpoint ID`: checkpoint a running container (any runtime) into a Kubernetes-layout
// archive (--export) and/or a checkpoint OCI image (--create-image, --push), as Podman's
// `container checkpoint` does. The work is in src/ferry/checkpoint/checkpoint.ts.
import { Command, Option } from 'commander';
import { Connection } from '../containerd';
import type { CliContext } from '../context';
import { checkpoint, type CheckpointResult } from '../checkpoint/checkpoint';
import { COMPRESSIONS, parseCompression } from '../../format/compression';
import { createProgress, formatBytes } from '../progress';

interface CheckpointFlags {
  export?: string;
  compress: string;
  createImage?: string;
  push?: boolean;
  leaveRunning?: boolean;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  printStats?: boolean;
  force?: boolean;
  hostsDir?: string;
  plainHttp?: boolean;
}

function text(r: CheckpointResult): string {
  const lines: string[] = [];
  if (r.export) lines.push(`exported ${r.id} to ${r.export.path} (${r.export.compression}, ${formatBytes(r.export.size)})`);
  if (r.image) {
    lines.push(`created image ${r.image.name} (${r.image.manifest.digest}, layer ${formatBytes(r.image.layer.size)})`);
    if (r.image.pushed) lines.push(`pushed ${r.image.name}`);
  }
  lines.push(r.stopped ? `container ${r.id} stopped` : `container ${r.id} left running`);
  if (r.statistics) {
    const s = r.statistics;
    lines.push('CRIU dump statistics',
      `  Freezing time: ${s.freezing_time} µs`, `  Frozen time: ${s.frozen_time} µs`,
      `  Memdump time: ${s.memdump_time} µs`, `  Memwrite time: ${s.memwrite_time} µs`,
      `  Pages scanned: ${s.pages_scanned}`, `  Pages written: ${s.pages_written}`);
  }
  return lines.join('\n');
}

export function registerCheckpoint(program: Command, ctx: CliContext): void {
  program
    .command('checkpoint')
    .description('checkpoint a running container into an archive (Kubernetes layout) and/or a checkpoint OCI image')
    .argument('<id>', 'the container')
    .option('-e, --export <file>', 'write the checkpoint to this archive (mode 0600)')
    .addOption(new Option('-c, --compress <method>', 'compression of the archive and image layer').choices([...COMPRESSIONS]).default('zstd'))
    .option('--create-image <ref>', 'store the checkpoint as an OCI image named REF in containerd')
    .option('--push', 'push the --create-image image to its registry (through containerd)')
    .option('-R, --leave-running', 'leave the container running (default: stop it once the checkpoint is complete)')
    .option('--tcp-established', 'checkpoint established TCP connections')
    .option('--file-locks', 'checkpoint file locks')
    .option('--print-stats', "print CRIU's dump statistics")
    .option('-f, --force', 'replace an existing --export file or --create-image image')
    .option('--hosts-dir <dir>', 'containerd 2.x: registry hosts.toml directory for --push (as ctr --hosts-dir)')
    .option('--plain-http', 'containerd 2.x: push over plain HTTP')
    .action(async (id: string, flags: CheckpointFlags, cmd: Command) => {
      ctx.commandName = 'checkpoint';
      const g = ctx.globals(cmd);
      const conn = new Connection(g.address, g.namespace);
      // Ctrl-C (or SIGTERM) abandons the checkpoint at its next safe point and undoes it; a
      // second one kills ferry as usual.
      const abort = new AbortController();
      const onSignal = () => {
        ctx.stderr.write('ferry checkpoint: interrupted; undoing the checkpoint (again to kill ferry at once)\n');
        abort.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const result = await checkpoint(conn, {
          containerId: id,
          exportFile: flags.export,
          compression: parseCompression(flags.compress),
          createImage: flags.createImage,
          push: flags.push ?? false,
          leaveRunning: flags.leaveRunning ?? false,
          tcpEstablished: flags.tcpEstablished ?? false,
          fileLocks: flags.fileLocks ?? false,
          printStats: flags.printStats ?? false,
          force: flags.force ?? false,
          hostsDir: flags.hostsDir,
          plainHttp: flags.plainHttp ?? false,
          signal: abort.signal,
        }, createProgress(ctx, g));
        ctx.print(g, result, () => text(result));
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        conn.close();
      }
    });
}
