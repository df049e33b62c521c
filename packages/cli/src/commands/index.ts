import type { Command } from 'commander';
import type { CommandContext } from '../context.js';

/** A command module: adds one or more subcommands to the program. Heavy packages are imported inside actions. */
export type Register = (program: Command, ctx: CommandContext) => void;

/** One command module, loaded on demand: `fsw hash ...` loads the hash module alone. */
export interface CommandModule {
  /** The subcommands the module registers. */
  readonly names: readonly string[];
  readonly load: () => Promise<{ readonly register: Register }>;
}

/** Every command module of `fsw`, in the order `fsw --help` lists them. */
export const commands: readonly CommandModule[] = [
  { names: ['walk'], load: () => import('./walk.js') },
  { names: ['hash'], load: () => import('./hash.js') },
  { names: ['copy', 'move'], load: () => import('./copy.js') },
  { names: ['dedup'], load: () => import('./dedup.js') },
  { names: ['write-tree'], load: () => import('./write-tree.js') },
  { names: ['ls-tree'], load: () => import('./ls-tree.js') },
  { names: ['checkout'], load: () => import('./checkout.js') },
  { names: ['diff'], load: () => import('./diff.js') },
  { names: ['evict'], load: () => import('./evict.js') },
  { names: ['push', 'write-tree-push'], load: () => import('./push.js') },
  { names: ['pull', 'pull-checkout'], load: () => import('./pull.js') },
  { names: ['serve'], load: () => import('./serve.js') },
  { names: ['watch'], load: () => import('./watch.js') },
];
