// The commands of `ferry`, in the order `ferry --help` lists them. Each file declares its own
// flags and action.
import type { Command } from 'commander';
import type { CliContext } from '../context';
import { registerRestore } from './restore';
import { registerVersion } from './version';

export type RegisterCommand = (program: Command, ctx: CliContext) => void;

export const COMMANDS: RegisterCommand[] = [
  registerRestore,
  registerVersion,
];
