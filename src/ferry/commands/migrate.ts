// `ferry migrate ID --to ADDRESS`: moves a running container to the containerd at ADDRESS in one
// command — `ferry checkpoint`'s checkpoint (the container stays frozen meanwhile) into a plain
// archive in ferry's state directory, `ferry restore` of it on the destination, and only then
// the source is stopped and removed. If the restore fails, the checkpoint resumes the frozen
// source and the error says it runs again; should even that fail, the archive is kept and the
// error names it (`ferry restore --import` it). On one host the runc state of a container is
// /run/containerd/runc/<namespace>/<id> for every containerd, so the destination must differ in
// namespace or id.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError } from '../../errors';
import { checkpoint } from '../checkpoint/checkpoint';
import { Connection, findContainer, findTask, TaskStatus } from '../containerd';
import type { CliContext } from '../context';
import { errorReason } from '../cli-error';
import { createProgress } from '../progress';
import { stateRoot } from '../restore/container-state';
import { removeContainer } from '../restore/remove-container';
import { restoreCheckpoint, FERRY_RUNTIME, type RestoreResult } from '../restore/restore';
import { checkRegistryFlags, cliLog, pullFor, registryOptions, type RegistryFlags } from './restore-shared';

interface MigrateFlags extends RegistryFlags {
  to: string;
  toNamespace?: string;
  name?: string;
  runtime: string;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
}

export function registerMigrate(program: Command, ctx: CliContext): void {
  registryOptions(program
    .command('migrate')
    .description('move a running container to another containerd: checkpoint, restore there, then remove the source')
    .argument('<id>', 'the running container')
    .requiredOption('--to <address>', "the destination containerd's socket")
    .option('--to-namespace <name>', 'namespace on the destination (default: the same)')
    .option('--name <id>', 'id on the destination (default: the same)')
    .option('--runtime <name>', 'runtime on the destination', FERRY_RUNTIME)
    .option('--tcp-established', 'checkpoint and restore established TCP connections')
    .option('--file-locks', 'checkpoint and restore file locks'))
    .action(async (id: string, flags: MigrateFlags, cmd: Command) => {
      ctx.commandName = 'migrate';
      const g = ctx.globals(cmd);
      const to = flags.to.replace(/^unix:\/\//, '');
      const toNamespace = flags.toNamespace ?? g.namespace;
      const newId = flags.name ?? id;
      if (path.resolve(to) === path.resolve(g.address) && toNamespace === g.namespace) {
        throw new InvalidArgumentError('the destination is the source containerd and namespace');
      }
      if (toNamespace === g.namespace && newId === id) {
        throw new InvalidArgumentError(`on one host every containerd keeps runc's state of ${g.namespace}/${id} in the same place: give --name or --to-namespace`);
      }
      const source = new Connection(g.address, g.namespace);
      const dest = new Connection(to, toNamespace);
      const root = stateRoot(ctx.env);
      const progress = createProgress(ctx, g);
      const archive = path.join(root, 'migrate', `${id}-${randomBytes(4).toString('hex')}.tar`);
      let restored: RestoreResult | undefined;
      try {
        await checkRegistryFlags(dest, flags);
        if (!(await findContainer(source, id))) throw new NotFoundError(`no container ${id} in namespace ${g.namespace}`);
        // The destination answers and the name is free there — before the source is touched.
        if (await findContainer(dest, newId)) throw new FailedPreconditionError(`the destination already has a container ${newId}`);
        await fs.promises.mkdir(path.dirname(archive), { recursive: true, mode: 0o700 });
        try {
          await checkpoint(source, {
            containerId: id, exportFile: archive, compression: 'none', push: false, leaveRunning: false,
            tcpEstablished: !!flags.tcpEstablished, fileLocks: !!flags.fileLocks, printStats: false, force: false,
            beforeStop: async () => {
              restored = await restoreCheckpoint(dest, {
                source: { kind: 'archive', path: archive }, name: newId, runtime: flags.runtime, tcpEstablished: flags.tcpEstablished, fileLocks: flags.fileLocks,
                pull: pullFor(flags, progress), stateRoot: root, log: cliLog(ctx),
              });
            },
          }, progress);
        } catch (err) {
          if (restored) throw new InternalError(`restored on ${to} as ${newId}, but stopping the source failed: ${errorReason(err)}`);
          const task = await findTask(source, id).catch(() => undefined);
          if (task?.status === TaskStatus.RUNNING) {
            await fs.promises.rm(archive, { force: true });
            throw new FailedPreconditionError(`${errorReason(err)}; the source container ${id} is running again`);
          }
          if (fs.existsSync(archive)) {
            throw new FailedPreconditionError(`${errorReason(err)}; the source container ${id} is not running: its checkpoint is kept at ${archive} (ferry restore --import ${archive})`);
          }
          throw err;
        }
        await removeContainer(source, id);
        await fs.promises.rm(archive, { force: true });
        const result = { id, to, namespace: toNamespace, restored: restored!, sourceRemoved: true };
        ctx.print(g, result, () => `migrated ${id} to ${to} (namespace ${toNamespace}) as ${newId}, pid ${restored!.pid}`);
      } finally {
        progress.stop();
        source.close();
        dest.close();
      }
    });
}
