import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { register as checkout } from './checkout.js';
import { register as copy } from './copy.js';
import { register as dedup } from './dedup.js';
import { register as diff } from './diff.js';
import { register as evict } from './evict.js';
import { register as hash } from './hash.js';
import { register as lsTree } from './ls-tree.js';
import { register as pull } from './pull.js';
import { register as push } from './push.js';
import { register as serve } from './serve.js';
import { register as walk } from './walk.js';
import { register as watch } from './watch.js';
import { register as writeTree } from './write-tree.js';

/** A command module: adds one or more subcommands to the program. Heavy packages are imported inside actions. */
export type Register = (program: Command, ctx: CommandContext) => void;

/** Every command of `fsw`, in the order `fsw --help` lists them. */
export const commands: readonly Register[] = [
  walk,
  hash,
  copy,
  dedup,
  writeTree,
  lsTree,
  checkout,
  diff,
  evict,
  push,
  pull,
  serve,
  watch,
];
