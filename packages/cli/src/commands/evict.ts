import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import { formatBytes } from '../format.js';
import type { Register } from './index.js';
import { cacheDir, cacheRetention, cacheSize, type TreeFlags, withCacheOption } from './tree-options.js';

/** `fsw evict`: shrinks the object store, least recently used first. */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withCacheOption(
      program
        .command('evict')
        .description(
          'shrink the object store to --cache-size, least recently used first, keeping recent objects',
        )
        .option('--cache-size <size>', 'size to shrink to, e.g. 10GiB (env FSTREE_CACHE_SIZE; default 10GiB)')
        .option(
          '--cache-retention <duration>',
          'never evict objects used more recently, e.g. 1h (env FSTREE_CACHE_RETENTION; default 1h)',
        ),
    ),
  ).action(async (flags: TreeFlags) => {
    const out = outputFor(ctx, flags);
    const maxBytes = cacheSize(ctx, flags);
    const retentionMs = cacheRetention(ctx, flags);
    const { openStore } = await import('@fsw/tree');
    const store = openStore(cacheDir(ctx, flags));
    const result = await store.evict({
      ...(maxBytes === undefined ? {} : { maxBytes }),
      ...(retentionMs === undefined ? {} : { retentionMs }),
    });
    const left = await store.usage();
    if (out.json) out.record({ ...result, bytesLeft: left.bytes, objectsLeft: left.objects });
    else {
      out.line(
        `evicted ${result.removed} objects (${formatBytes(result.bytesFreed)}); ${left.objects} objects (${formatBytes(left.bytes)}) left in ${store.dir}`,
      );
    }
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
