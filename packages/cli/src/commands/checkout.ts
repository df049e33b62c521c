import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import type { Register } from './index.js';
import { INTERRUPTED, interruptible } from './interrupt.js';
import {
  digestArg,
  filesBar,
  fileThreads,
  ignoreFile,
  storeOptions,
  type TreeFlags,
  threads,
  withCacheOption,
  withVerifyOption,
  withWalkOptions,
} from './tree-options.js';

interface CheckoutFlags extends TreeFlags {
  index: boolean;
  force?: boolean;
}

/** `fsw checkout DIGEST [DIR]`: makes a folder equal to a tree from the store. */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withWalkOptions(
      withVerifyOption(
        withCacheOption(
          program
            .command('checkout')
            .description(
              'make a folder equal to a tree from the store (removes what the tree lacks, keeps ignored paths)',
            )
            .argument('<digest>', 'the tree digest')
            .argument('[dir]', 'the folder (created when missing)', '.')
            .option('-f, --force', 'also replace or modify non-empty folders fsw did not write')
            .option('--no-index', 'do not use or update DIR/.fstree/index'),
        ),
      ),
    ),
  ).action(async (digestText: string, dir: string, flags: CheckoutFlags) => {
    const out = outputFor(ctx, flags);
    const digest = await digestArg(digestText);
    const concurrency = threads(ctx, flags);
    const { checkout, openStore } = await import('@fsw/tree');
    const where = storeOptions(ctx, flags);
    const bar = out.progress({ unit: 'bytes', label: 'checkout' });
    // Ctrl-C or SIGTERM: files in flight are finished or removed (no temp file left), the index records what was
    // written, then exit 130 / 143; running the checkout again finishes it without --force.
    const stop = interruptible(out, 'checkout');
    try {
      const result = await checkout(digest, dir, {
        store: openStore(where.dir, { verify: where.verify }),
        ignoreFile: ignoreFile(ctx, flags),
        index: flags.index,
        force: flags.force === true,
        ...fileThreads(concurrency),
        onProgress: filesBar(bar),
        signal: stop.signal,
      });
      bar.stop();
      if (out.json) out.record({ digest, ...result });
      else out.line(digest);
    } catch (error) {
      if (!stop.stoppedBy(error)) throw error;
      bar.stop();
      out.warn(INTERRUPTED);
      ctx.setExitCode(stop.exitCode);
      return;
    } finally {
      bar.stop();
      stop.dispose();
    }
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
