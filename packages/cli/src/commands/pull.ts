import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import type { Register } from './index.js';
import { INTERRUPTED, interruptible } from './interrupt.js';
import {
  type RemoteFlags,
  remoteSettings,
  runTransfer,
  transferBar,
  withRemoteOptions,
} from './remote-options.js';
import {
  cacheDir,
  digestArg,
  filesBar,
  fileThreads,
  ignoreFile,
  withCacheOption,
  withWalkOptions,
} from './tree-options.js';

interface PullCheckoutFlags extends RemoteFlags {
  index: boolean;
  force?: boolean;
}

/**
 * `fsw pull DIGEST` downloads a tree from a remote into the store; `fsw pull-checkout DIGEST [DIR]` also makes a
 * folder equal to it. Both print the root digest.
 */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withRemoteOptions(
      withCacheOption(
        program
          .command('pull')
          .description(
            'download a tree and everything below it from a remote cache into the store (verified)',
          )
          .argument('<digest>', 'the tree digest')
          .option('--threads <n>', 'downloads at once (env FSTREE_THREADS; default 16)'),
      ),
    ),
  ).action(async (digestText: string, flags: RemoteFlags) => {
    const out = outputFor(ctx, flags);
    const digest = await digestArg(digestText);
    const { url, options, concurrency } = remoteSettings(ctx, flags);
    const { openStore } = await import('@fsw/tree');
    const { openRemote, pull } = await import('@fsw/remote');
    const store = openStore(cacheDir(ctx, flags));
    const remote = openRemote(url, options);
    await runTransfer(out, url, remote, 'pull', (onProgress) =>
      pull(remote, store, digest, { ...(concurrency === undefined ? {} : { concurrency }), onProgress }),
    );
    ctx.setExitCode(out.failed ? 1 : 0);
  });

  withOutputOptions(
    withRemoteOptions(
      withWalkOptions(
        withCacheOption(
          program
            .command('pull-checkout')
            .description('pull a tree from a remote cache, then make a folder equal to it')
            .argument('<digest>', 'the tree digest')
            .argument('[dir]', 'the folder (created when missing)', '.')
            .option('-f, --force', 'also replace or modify non-empty folders fsw did not write')
            .option('--no-index', 'do not use or update DIR/.fstree/index'),
        ),
      ),
    ),
  ).action(async (digestText: string, dir: string, flags: PullCheckoutFlags) => {
    const out = outputFor(ctx, flags);
    const digest = await digestArg(digestText);
    const { url, options, concurrency } = remoteSettings(ctx, flags);
    const { checkout, openStore } = await import('@fsw/tree');
    const { openRemote, pull } = await import('@fsw/remote');
    const store = openStore(cacheDir(ctx, flags));
    const remote = openRemote(url, options);
    let bar = out.progress({ unit: 'bytes', label: 'pull' });
    // As `fsw checkout`: stopped cleanly by Ctrl-C or SIGTERM (what was pulled stays in the store).
    const stop = interruptible(out, 'pull-checkout');
    try {
      const pulled = await pull(remote, store, digest, {
        ...(concurrency === undefined ? {} : { concurrency }),
        onProgress: transferBar(bar),
        signal: stop.signal,
      });
      bar.stop();
      bar = out.progress({ unit: 'bytes', label: 'checkout' });
      const checked = await checkout(digest, dir, {
        store,
        ignoreFile: ignoreFile(ctx, flags),
        index: flags.index,
        force: flags.force === true,
        ...fileThreads(concurrency),
        onProgress: filesBar(bar),
        signal: stop.signal,
      });
      bar.stop();
      if (out.json) out.record({ ...pulled, checkout: checked, remote: url });
      else out.line(digest);
    } catch (error) {
      if (!stop.stoppedBy(error)) throw error;
      bar.stop();
      out.warn(`pull-${INTERRUPTED}`);
      ctx.setExitCode(stop.exitCode);
      return;
    } finally {
      bar.stop();
      stop.dispose();
      await remote.close();
    }
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
