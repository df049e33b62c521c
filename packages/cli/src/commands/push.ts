import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import type { Register } from './index.js';
import { type RemoteFlags, remoteSettings, runTransfer, withRemoteOptions } from './remote-options.js';
import {
  cacheDir,
  digestArg,
  filesBar,
  fileThreads,
  ignoreFile,
  withCacheOption,
  withWalkOptions,
} from './tree-options.js';

interface WriteTreePushFlags extends RemoteFlags {
  index: boolean;
}

/**
 * `fsw push DIGEST` uploads a tree from the store to a remote; `fsw write-tree-push [DIR]` stores a folder as a tree
 * and pushes it. Both print the root digest.
 */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withRemoteOptions(
      withCacheOption(
        program
          .command('push')
          .description('upload a tree and everything below it to a remote cache (only what it lacks)')
          .argument('<digest>', 'the tree digest')
          .option('--threads <n>', 'uploads at once (env FSTREE_THREADS; default 16)'),
      ),
    ),
  ).action(async (digestText: string, flags: RemoteFlags) => {
    const out = outputFor(ctx, flags);
    const digest = await digestArg(digestText);
    const { url, options, concurrency } = remoteSettings(ctx, flags);
    const { openStore } = await import('@fsw/tree');
    const { openRemote, push } = await import('@fsw/remote');
    const store = openStore(cacheDir(ctx, flags));
    const remote = openRemote(url, options);
    await runTransfer(out, url, remote, 'push', (onProgress) =>
      push(store, remote, digest, { ...(concurrency ? { concurrency } : {}), onProgress }),
    );
    ctx.setExitCode(out.failed ? 1 : 0);
  });

  withOutputOptions(
    withRemoteOptions(
      withWalkOptions(
        withCacheOption(
          program
            .command('write-tree-push')
            .description('store a folder as a tree, then push it to a remote cache; prints the root digest')
            .argument('[dir]', 'the folder', '.')
            .option('--no-index', 'ignore and do not update DIR/.fstree/index (hash every file)'),
        ),
      ),
    ),
  ).action(async (dir: string, flags: WriteTreePushFlags) => {
    const out = outputFor(ctx, flags);
    const { url, options, concurrency } = remoteSettings(ctx, flags);
    const { openStore, writeTree } = await import('@fsw/tree');
    const { openRemote, push } = await import('@fsw/remote');
    const store = openStore(cacheDir(ctx, flags));
    const remote = openRemote(url, options);
    const hashing = out.progress({ unit: 'bytes', label: 'write-tree' });
    const digest = await writeTree(dir, {
      store,
      ignoreFile: ignoreFile(ctx, flags),
      index: flags.index,
      ...fileThreads(concurrency),
      onProgress: filesBar(hashing),
    })
      .catch(async (error: unknown) => {
        await remote.close();
        throw error;
      })
      .finally(() => hashing.stop());
    await runTransfer(out, url, remote, 'push', (onProgress) =>
      push(store, remote, digest, { ...(concurrency === undefined ? {} : { concurrency }), onProgress }),
    );
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
