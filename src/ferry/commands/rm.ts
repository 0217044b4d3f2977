// `ferry rm ID...`: removes containers as `ctr run --rm` does (task killed and deleted, container
// record, snapshot) and, for containers `ferry restore` made, their host-side state (the new
// network namespace and substitute bind-mount sources). A container removed with `ctr c rm`
// instead keeps that state until the next `ferry restore` or `ferry run` in its namespace
// collects it.
import type { Command } from 'commander';
import { NotFoundError } from '../../errors';
import { Connection, findContainer } from '../containerd';
import type { CliContext } from '../context';
import { removeContainer } from '../restore/remove-container';

export function registerRm(program: Command, ctx: CliContext): void {
  program
    .command('rm')
    .description('remove containers (task, record, snapshot) and the host state a ferry restore made for them')
    .argument('<id...>', 'container ids')
    .action(async (ids: string[], _flags: unknown, cmd: Command) => {
      ctx.commandName = 'rm';
      const g = ctx.globals(cmd);
      const conn = new Connection(g.address, g.namespace);
      try {
        for (const id of ids) {
          if (!(await findContainer(conn, id))) throw new NotFoundError(`container ${id} does not exist`);
          await removeContainer(conn, id);
        }
        ctx.print(g, { removed: ids }, () => ids.join('\n'));
      } finally {
        conn.close();
      }
    });
}
