// The commands of `ferry`, in the order `ferry --help` lists them. Each file declares its own
// flags and action.
import type { Command } from 'commander';
import type { CliContext } from '../context';
import { registerCheckpoint } from './checkpoint';
import { register as inspect } from './inspect';
import { register as list } from './list';
import { registerMigrate } from './migrate';
import { registerRestore } from './restore';
import { registerRm } from './rm';
import { registerRun } from './run';
import { registerVersion } from './version';

export type RegisterCommand = (program: Command, ctx: CliContext) => void;

export const COMMANDS: RegisterCommand[] = [
  registerCheckpoint,
  registerRestore,
  registerRun,
  registerRm,
  registerMigrate,
  inspect,
  list,
  registerVersion,
];
