// `ferry version`: this command's version and the containerd it talks to (as `ctr version`).
import type { Command } from 'commander';
import { Connection, containerdVersion } from '../containerd';
import type { CliContext } from '../context';
import { FERRY_VERSION } from '../version';

export function registerVersion(program: Command, ctx: CliContext): void {
  program
    .command('version')
    .description("print ferry's version and the version of the containerd it talks to")
    .action(async (_opts: unknown, cmd: Command) => {
      ctx.commandName = 'version';
      const g = ctx.globals(cmd);
      const conn = new Connection(g.address, g.namespace);
      try {
        const server = await containerdVersion(conn);
        const result = { client: { version: FERRY_VERSION }, server: { version: server.version, revision: server.revision } };
        ctx.print(g, result, () => `Client:\n  Version: ${FERRY_VERSION}\n\nServer:\n  Version:  ${server.version}\n  Revision: ${server.revision}`);
      } finally {
        conn.close();
      }
    });
}
