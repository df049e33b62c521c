import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import type { Register } from './index.js';
import {
  cacheDir,
  filesBar,
  fileThreads,
  ignoreFile,
  type TreeFlags,
  threads,
  withCacheOption,
  withWalkOptions,
} from './tree-options.js';

interface WriteTreeFlags extends TreeFlags {
  index: boolean;
}

/** `fsw write-tree [DIR]`: stores a folder as an fstree Merkle tree and prints its root digest. */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withWalkOptions(
      withCacheOption(
        program
          .command('write-tree')
          .description('store a folder as an fstree-compatible Merkle tree; prints the root digest')
          .argument('[dir]', 'the folder', '.')
          .option('--no-index', 'ignore and do not update DIR/.fstree/index (hash every file)'),
      ),
    ),
  ).action(async (dir: string, flags: WriteTreeFlags) => {
    const out = outputFor(ctx, flags);
    const concurrency = threads(ctx, flags);
    const { openStore, writeTree } = await import('@fsw/tree');
    const bar = out.progress({ unit: 'bytes', label: 'write-tree' });
    let final: {
      filesTotal: number;
      filesHashed: number;
      filesReused: number;
      bytesTotal: number;
      trees: number;
    } = { filesTotal: 0, filesHashed: 0, filesReused: 0, bytesTotal: 0, trees: 0 };
    const toBar = filesBar(bar);
    try {
      const digest = await writeTree(dir, {
        store: openStore(cacheDir(ctx, flags)),
        ignoreFile: ignoreFile(ctx, flags),
        index: flags.index,
        ...fileThreads(concurrency),
        onProgress: (p) => {
          final = p;
          toBar(p);
        },
      });
      bar.stop();
      if (flags.index !== false && !out.quiet) {
        // writeTree never writes through (or over) a `.fstree` that is not a folder: say why every run re-hashes.
        const indexDir = join(dir, '.fstree');
        const st = await lstat(indexDir).catch(() => undefined);
        if (st !== undefined && !st.isDirectory()) {
          ctx.io.stderr.write(
            `fsw: note: ${indexDir} is not a folder: no index saved (the next run hashes every file again)\n`,
          );
        }
      }
      if (out.json) {
        out.record({
          digest,
          files: final.filesTotal,
          filesHashed: final.filesHashed,
          filesReused: final.filesReused,
          bytes: final.bytesTotal,
          trees: final.trees,
        });
      } else {
        out.line(digest);
      }
    } finally {
      bar.stop();
    }
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
