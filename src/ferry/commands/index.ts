// The commands of `ferry`, in the order `ferry --help` lists them. Each file declares its own
// flags and action.
import type { Command } from 'commander';
import type { CliContext } from '../context';
import { register as inspect } from './inspect';
import { register as list } from './list';
import { registerVersion } from './version';

export type RegisterCommand = (program: Command, ctx: CliContext) => void;

export const COMMANDS: RegisterCommand[] = [
  inspect,
  list,
  registerVersion,
];
