// What `ferry restore`, `ferry run --checkpoint` and `ferry migrate` share on the command side:
// warnings on stderr, the pull used for base and checkpoint images, the progress of reading the
// source, and telling an archive path from an image reference.
import * as fs from 'node:fs';
import type { WarnLogger } from '../../format/warn-logger';
import type { CliContext, GlobalOptions } from '../context';
import type { PullImage } from '../restore/base-image';
import type { RestoreSource } from '../restore/restore';

/** Warnings go to stderr as `ferry <command>: warning: …` (one line each), in text and JSON mode alike. */
export function cliLog(ctx: CliContext, _g: GlobalOptions): WarnLogger {
  return { warn: (m) => { ctx.stderr.write(`ferry ${ctx.commandName}: warning: ${m.replace(/\s*\n\s*/g, '; ')}\n`); } };
}

/** The pull of base and checkpoint images (containerd's Transfer service). */
export function pullFor(_ctx: CliContext, _g: GlobalOptions): PullImage | undefined {
  return undefined;
}

export interface SourceProgress {
  update: (bytes: number) => void;
  stop: () => void;
}

/** A progress bar over the bytes of the source on a terminal; nothing otherwise. */
export function sourceProgress(_ctx: CliContext, _g: GlobalOptions, _source: RestoreSource): SourceProgress {
  return { update: () => undefined, stop: () => undefined };
}

/** `ferry run --checkpoint X`: an existing file is an archive, anything else an image reference. */
export function sourceOf(value: string): RestoreSource {
  return fs.existsSync(value) || value.startsWith('/') || value.startsWith('.') ? { kind: 'archive', path: value } : { kind: 'image', ref: value };
}
