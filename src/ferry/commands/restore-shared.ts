// What `ferry restore`, `ferry run --checkpoint` and `ferry migrate` share on the command side:
// warnings on stderr, the pull used for base and checkpoint images (containerd's Transfer
// service, with its progress), the progress of reading the source, and telling an archive path
// from an image reference.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { WarnLogger } from '../../format/warn-logger';
import { InvalidArgumentError } from '../../errors';
import { containerdVersion, findImage, pullImage, type Connection, type Image } from '../containerd';
import type { CliContext, GlobalOptions } from '../context';
import { createProgress, type Progress } from '../progress';
import { normaliseImageName, type PullImage } from '../restore/base-image';
import type { RestoreSource } from '../restore/restore';

/** Warnings go to stderr as `ferry <command>: warning: …` (one line each), in text and JSON mode alike. */
export function cliLog(ctx: CliContext): WarnLogger {
  return { warn: (m) => { ctx.stderr.write(`ferry ${ctx.commandName}: warning: ${m.replace(/\s*\n\s*/g, '; ')}\n`); } };
}

export interface RegistryFlags {
  plainHttp?: boolean;
  hostsDir?: string;
}

/** The registry flags of commands that may pull. */
export function registryOptions(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'speak plain HTTP to the registry (containerd 2.x; 1.7 pulls over HTTPS only)')
    .option('--hosts-dir <dir>', "containerd 2.x: directory of hosts.toml files (certs.d layout) for the registry");
}

/** containerd 1.7's Transfer service ignores both (as `ferry checkpoint --push` says too): refused there. */
export async function checkRegistryFlags(conn: Connection, flags: RegistryFlags): Promise<void> {
  if (!flags.plainHttp && !flags.hostsDir) return;
  const v = await containerdVersion(conn);
  if (v.major < 2) {
    throw new InvalidArgumentError(`containerd ${v.version} reads no --hosts-dir or --plain-http in a pull: trust the registry's CA in containerd's environment instead (docs/ferry-cli.md, Registries)`);
  }
}

/** The pull of base and checkpoint images through containerd's Transfer service, with a progress bar. */
export function pullFor(flags: RegistryFlags, progress: Progress): PullImage {
  return async (conn: Connection, ref: string): Promise<Image> => {
    const name = ref.includes('@') ? ref : normaliseImageName(ref);
    progress.start(`pull ${name}`, 0);
    try {
      await pullImage(conn, name, {
        onProgress: (p) => progress.update(p.done, p.total),
        ...(flags.plainHttp ? { defaultScheme: 'http' } : {}),
        ...(flags.hostsDir ? { hostDir: flags.hostsDir } : {}),
      });
    } finally {
      progress.stop();
    }
    const image = await findImage(conn, name);
    if (!image) throw new Error(`containerd pulled ${name} but has no image of that name`);
    return image;
  };
}

export interface SourceProgress {
  progress: Progress;
  update: (bytes: number, total: number) => void;
}

/** A progress bar over the bytes of the restore's source, on a terminal only (never with --json). */
export function sourceProgress(ctx: CliContext, g: GlobalOptions, source: RestoreSource): SourceProgress {
  const progress = createProgress(ctx, g);
  const label = source.kind === 'archive' ? `import ${source.path}` : `import ${source.ref}`;
  let started = false;
  return {
    progress,
    update: (bytes, total) => {
      if (!started) { progress.start(label, total); started = true; }
      progress.update(bytes, total);
    },
  };
}

/** `ferry run --checkpoint X`: an existing file is an archive, anything else an image reference. */
export function sourceOf(value: string): RestoreSource {
  return fs.existsSync(value) || value.startsWith('/') || value.startsWith('.') ? { kind: 'archive', path: value } : { kind: 'image', ref: value };
}
