import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import type { Register } from './index.js';
import {
  digestArg,
  storeOptions,
  type TreeFlags,
  withCacheOption,
  withVerifyOption,
} from './tree-options.js';

interface LsTreeFlags extends TreeFlags {
  recursive?: boolean;
}

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const;

/** `fsw ls-tree DIGEST [-r]`: lists a tree from the store. */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withVerifyOption(
      withCacheOption(
        program
          .command('ls-tree')
          .description('list a tree from the store: "<mode> <type> <digest>\\t<path>" per entry')
          .argument('<digest>', 'the tree digest (blake3:<hex>, sha1:<hex> or bare hex)')
          .option('-r, --recursive', 'list subtrees too (each folder before its contents)'),
      ),
    ),
  ).action(async (digestText: string, flags: LsTreeFlags) => {
    const out = outputFor(ctx, flags);
    const digest = await digestArg(digestText);
    const { lsTree, openStore } = await import('@fsw/tree');
    const { dir, verify } = storeOptions(ctx, flags);
    const entries = await lsTree(digest, {
      store: openStore(dir, { verify }),
      recursive: flags.recursive === true,
    });
    const lines: string[] = [];
    for (const e of entries) {
      if (out.json) {
        lines.push(JSON.stringify(e));
        continue;
      }
      const mode = (TYPE_BITS[e.type] | e.mode).toString(8).padStart(6, '0');
      const type = e.type === 'dir' ? 'tree' : e.type;
      const id = e.type === 'symlink' ? '-' : e.digest;
      const suffix = e.type === 'symlink' ? ` -> ${e.target}` : '';
      lines.push(`${mode} ${type} ${id}\t${e.path}${suffix}`);
    }
    if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
