import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { register as dedup } from './dedup.js';
import { register as walk } from './walk.js';

/** A command module: adds one or more subcommands to the program. Heavy packages are imported inside actions. */
export type Register = (program: Command, ctx: CommandContext) => void;

/** Every command of `fsw`, in the order `fsw --help` lists them. */
export const commands: readonly Register[] = [walk, dedup];
