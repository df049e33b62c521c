import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { parseBytes, parseCount, parseDurationMs, UsageError } from '../format.js';
import type { Progress } from '../output.js';

/** Flags shared by the tree commands (each also read from its `FSTREE_*` variable, as fstree does). */
export interface TreeFlags {
  cache?: string;
  ignore?: string;
  threads?: string;
  cacheSize?: string;
  cacheRetention?: string;
  verify?: boolean;
  json?: boolean;
  quiet?: boolean;
}

/** Adds `--cache DIR` (env FSTREE_CACHE). */
export function withCacheOption(command: Command): Command {
  return command.option(
    '--cache <dir>',
    'object store directory (env FSTREE_CACHE; default ~/.cache/fstree)',
  );
}

/** Adds `--verify`: the store re-hashes every object read from it (`openStore`'s `verify`). */
export function withVerifyOption(command: Command): Command {
  return command.option(
    '--verify',
    're-hash every object read from the store; a corrupt one fails the command and is removed from the store',
  );
}

/** Options of `openStore` from the flags: the store directory and `verify`. */
export function storeOptions(
  ctx: CommandContext,
  flags: TreeFlags,
): { dir: string | undefined; verify: boolean } {
  return { dir: cacheDir(ctx, flags), verify: flags.verify === true };
}

/** Adds `--ignore NAME` (env FSTREE_IGNORE) and `--threads N` (env FSTREE_THREADS). */
export function withWalkOptions(command: Command): Command {
  return command
    .option(
      '--ignore <name>',
      'ignore file at the root of the folder (env FSTREE_IGNORE; default .fstreeignore)',
    )
    .option(
      '--threads <n>',
      'files hashed or written at once, and worker threads for small files (1: none) (env FSTREE_THREADS; default: by tree size and CPU count)',
    );
}

function fromEnv(ctx: CommandContext, name: string): string | undefined {
  const value = ctx.io.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** The store directory: `--cache`, else `FSTREE_CACHE`, else the library default. */
export function cacheDir(ctx: CommandContext, flags: TreeFlags): string | undefined {
  return flags.cache ?? fromEnv(ctx, 'FSTREE_CACHE');
}

/** The ignore file name: `--ignore`, else `FSTREE_IGNORE`, else `.fstreeignore`. */
export function ignoreFile(ctx: CommandContext, flags: TreeFlags): string {
  return flags.ignore ?? fromEnv(ctx, 'FSTREE_IGNORE') ?? '.fstreeignore';
}

/** `--threads`, else `FSTREE_THREADS`, else undefined (the library default). @throws UsageError */
export function threads(ctx: CommandContext, flags: TreeFlags): number | undefined {
  const text = flags.threads ?? fromEnv(ctx, 'FSTREE_THREADS');
  if (text === undefined) return undefined;
  const n = parseCount(text, 'thread count');
  if (n < 1) throw new UsageError(`invalid thread count '${text}' (expected at least 1)`);
  return n;
}

/**
 * What `--threads N` (or `FSTREE_THREADS`) means to write-tree and checkout: N files at once, and N worker threads
 * for the small files (`1`: everything on the main thread). Neither given: the library's defaults.
 */
export function fileThreads(n: number | undefined): { concurrency?: number; workers?: number } {
  return n === undefined ? {} : { concurrency: n, workers: n > 1 ? n : 0 };
}

/** `--cache-size`, else `FSTREE_CACHE_SIZE`, else 10 GiB. @throws UsageError */
export function cacheSize(ctx: CommandContext, flags: TreeFlags): number | undefined {
  const text = flags.cacheSize ?? fromEnv(ctx, 'FSTREE_CACHE_SIZE');
  return text === undefined ? undefined : parseBytes(text);
}

/** `--cache-retention`, else `FSTREE_CACHE_RETENTION`, else 1 hour. @throws UsageError */
export function cacheRetention(ctx: CommandContext, flags: TreeFlags): number | undefined {
  const text = flags.cacheRetention ?? fromEnv(ctx, 'FSTREE_CACHE_RETENTION');
  return text === undefined ? undefined : parseDurationMs(text);
}

/** Checks a digest argument. @throws UsageError */
export async function digestArg(text: string): Promise<string> {
  const { tryParseDigest } = await import('@fsw/tree');
  const parts = tryParseDigest(text);
  if (parts === undefined) {
    throw new UsageError(`invalid digest '${text}' (expected blake3:<64 hex>, sha1:<40 hex> or bare hex)`);
  }
  return `${parts.algorithm}:${parts.hex}`;
}

/** Feeds a tree progress report (write-tree, checkout) into a bar: bytes, with files done as its detail. */
export function filesBar(bar: Progress): (p: FilesProgress) => void {
  return (p) => {
    bar.setTotal(p.bytesTotal);
    bar.update(p.bytesDone, `${p.filesDone}/${p.filesTotal} files`);
  };
}

/** The shape of write-tree's and checkout's progress reports that a bar needs. */
export interface FilesProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly filesDone: number;
  readonly filesTotal: number;
}
