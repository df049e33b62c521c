import type { OpenRemoteOptions, Remote, TransferProgress } from '@fsw/remote';
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { parseDurationMs } from '../format.js';
import type { Output, Progress } from '../output.js';
import { type TreeFlags, threads } from './tree-options.js';

/** Flags of the commands that talk to a remote (push, pull, write-tree-push, pull-checkout). */
export interface RemoteFlags extends TreeFlags {
  remote?: string;
  token?: string;
  timeout?: string;
}

/** The remote used when neither `--remote` nor `FSTREE_REMOTE` is given (fstree's default). */
export const DEFAULT_REMOTE_URL = 'jolt://localhost:9090';

/** Adds `--remote URL` (env FSTREE_REMOTE), `--token T` (env FSW_TOKEN) and `--timeout D`. */
export function withRemoteOptions(command: Command): Command {
  return command
    .option(
      '--remote <url>',
      `jolt://host:port, grpcs://, http(s)://host:port or file:///dir (env FSTREE_REMOTE; default ${DEFAULT_REMOTE_URL})`,
    )
    .option('--token <token>', 'bearer token sent to the remote (env FSW_TOKEN)')
    .option('--timeout <duration>', 'longest wait for a connection or an answer, e.g. 10s (default 30s)');
}

function fromEnv(ctx: CommandContext, name: string): string | undefined {
  const value = ctx.io.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** The remote URL and `openRemote` options from the flags and environment. @throws UsageError */
export function remoteSettings(
  ctx: CommandContext,
  flags: RemoteFlags,
): { url: string; options: OpenRemoteOptions; concurrency: number | undefined } {
  const url = flags.remote ?? fromEnv(ctx, 'FSTREE_REMOTE') ?? DEFAULT_REMOTE_URL;
  const token = flags.token ?? fromEnv(ctx, 'FSW_TOKEN');
  const concurrency = threads(ctx, flags);
  const options: OpenRemoteOptions = {
    ...(token === undefined ? {} : { token }),
    ...(flags.timeout === undefined ? {} : { timeoutMs: Math.max(1, parseDurationMs(flags.timeout)) }),
    ...(concurrency === undefined ? {} : { concurrency }),
  };
  return { url, options, concurrency };
}

/** Feeds a transfer's progress to a progress bar. */
export function transferBar(bar: Progress): (p: TransferProgress) => void {
  return (p) => {
    bar.setTotal(p.bytesTotal);
    bar.update(p.bytesDone, `${p.objectsDone}/${p.objectsTotal} objects`);
  };
}

/**
 * Runs one push or pull with a progress bar, prints its digest (or, with `--json`, its result and the remote), and
 * closes the remote whatever happens.
 */
export async function runTransfer(
  out: Output,
  url: string,
  remote: Remote,
  label: 'push' | 'pull',
  run: (onProgress: (p: TransferProgress) => void) => Promise<{ readonly digest: string }>,
): Promise<void> {
  const bar = out.progress({ unit: 'bytes', label });
  try {
    const result = await run(transferBar(bar));
    bar.stop();
    if (out.json) out.record({ ...result, remote: url });
    else out.line(result.digest);
  } finally {
    bar.stop();
    await remote.close();
  }
}
