// `ferry list [DIR...]`: the checkpoint archives kubelet (or anyone) left in these directories
// (default /var/lib/kubelet/checkpoints; files named checkpoint-*), as checkpointctl's `list`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { openCheckpointSource } from '../../format/checkpoint-source';
import { containerInfo, readConfigDump, readSpecDump } from '../../format/checkpoint-info';
import { errorReason } from '../cli-error';
import type { CliContext } from '../context';

export const DEFAULT_CHECKPOINT_DIR = '/var/lib/kubelet/checkpoints';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Go's time.RFC822 ("02 Jan 06 15:04 MST") of an RFC 3339 time, in the offset it was written with. */
export function goRfc822(s: string | undefined): string {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):\d\d(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(s ?? '');
  if (!m) return '01 Jan 01 00:00 UTC';
  const zone = m[6] === 'Z' ? 'UTC' : m[6].replace(':', '');
  return `${m[3]} ${MONTHS[Number(m[2]) - 1]} ${m[1].slice(2)} ${m[4]}:${m[5]} ${zone}`;
}

export interface ListRow {
  namespace: string;
  pod: string;
  container: string;
  engine: string;
  time_checkpointed: string;
  checkpoint_name: string;
  path: string;
  error?: string;
}

export async function listCheckpoints(dirs: string[]): Promise<ListRow[]> {
  const rows: ListRow[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await fs.promises.readdir(dir)).filter((n) => n.startsWith('checkpoint-')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const st = await fs.promises.lstat(p);
      if (!st.isFile()) continue;
      try {
        const src = await openCheckpointSource(p);
        const config = await readConfigDump(src);
        const info = containerInfo(config, await readSpecDump(src));
        rows.push({ namespace: info.namespace, pod: info.pod, container: info.name, engine: info.engine, time_checkpointed: goRfc822(config.checkpointedTime), checkpoint_name: name, path: p });
      } catch (err) {
        rows.push({ namespace: '', pod: '', container: '', engine: '', time_checkpointed: '', checkpoint_name: name, path: p, error: errorReason(err) });
      }
    }
  }
  return rows;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('list')
    .description(`list the checkpoint archives (checkpoint-*) in directories (default ${DEFAULT_CHECKPOINT_DIR})`)
    .argument('[dirs...]', 'directories to look in')
    .action(async (dirs: string[], _o: unknown, cmd: Command) => {
      ctx.commandName = 'list';
      const globals = ctx.globals(cmd);
      const rows = await listCheckpoints(dirs.length ? dirs : [DEFAULT_CHECKPOINT_DIR]);
      ctx.print(globals, rows, () => {
        if (rows.length === 0) return 'no checkpoints found';
        const table = [['NAMESPACE', 'POD', 'CONTAINER', 'ENGINE', 'TIME CHECKPOINTED', 'CHECKPOINT NAME'],
          ...rows.map((r) => [r.namespace, r.pod, r.container, r.engine, r.time_checkpointed, r.error ? `${r.checkpoint_name} (unreadable: ${r.error})` : r.checkpoint_name])];
        const w = table[0].map((_, i) => Math.max(...table.map((l) => l[i].length)));
        return table.map((l) => l.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n');
      });
    });
}
