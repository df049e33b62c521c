import { createRequire } from 'node:module';
import { WalkError } from '@fsw/errors';
import type { Ignore, Options as IgnoreOptions } from 'ignore';
import type { WalkOptions, WalkProgress } from '../types.js';

/** The options of one walk, checked and completed once at the boundary. */
export interface ResolvedOptions {
  readonly type: 'file' | 'dir' | 'symlink' | 'any';
  readonly glob: ((relativePath: string) => boolean) | undefined;
  readonly ignore: Ignore | undefined;
  readonly ignoreFiles: readonly string[];
  readonly maxDepth: number;
  readonly hidden: boolean;
  readonly followSymlinks: boolean;
  readonly stat: boolean;
  readonly syncStat: boolean;
  readonly syncReaddir: boolean;
  readonly sort: boolean;
  readonly concurrency: number;
  readonly signal: AbortSignal | undefined;
  readonly onError: (error: WalkError) => 'skip' | 'throw';
  readonly onProgress: ((progress: WalkProgress) => void) | undefined;
}

/** Directories read at once when `concurrency` is not given. */
export const DEFAULT_CONCURRENCY = 8;

const TYPES = new Set(['file', 'dir', 'symlink', 'any']);

function invalid(message: string): WalkError {
  return new WalkError('E_INVALID_ARGUMENT', message);
}

function list(value: string | readonly string[] | undefined, name: string): readonly string[] {
  if (value === undefined) return [];
  const items = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(items) || items.some((p) => typeof p !== 'string')) {
    throw invalid(`option ${name} must be a string or a list of strings`);
  }
  return items;
}

// micromatch and ignore load only when a walk uses them: micromatch alone costs more start-up than the CLI.
const load = createRequire(import.meta.url);
type Micromatch = typeof import('micromatch');
let micromatch: Micromatch | undefined;
let ignoreFactory: ((options?: IgnoreOptions) => Ignore) | undefined;

/** An ignore matcher that accepts every relative path (a file may be named `...`). */
export function createIgnore(): Ignore {
  ignoreFactory ??= load('ignore') as (options?: IgnoreOptions) => Ignore;
  return ignoreFactory({ allowRelativePaths: true });
}

/** Checks and completes the options of `walk`/`walkAll`. @throws WalkError E_INVALID_ARGUMENT */
export function resolveOptions(options: WalkOptions = {}): ResolvedOptions {
  const type = options.type ?? 'any';
  if (!TYPES.has(type))
    throw invalid(`option type must be 'file', 'dir', 'symlink' or 'any', not ${String(type)}`);
  const maxDepth = options.maxDepth ?? Number.POSITIVE_INFINITY;
  if (
    typeof maxDepth !== 'number' ||
    Number.isNaN(maxDepth) ||
    maxDepth < 0 ||
    (Number.isFinite(maxDepth) && !Number.isInteger(maxDepth))
  ) {
    throw invalid(`option maxDepth must be a non-negative integer or Infinity, not ${String(maxDepth)}`);
  }
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw invalid(`option concurrency must be a positive integer, not ${String(concurrency)}`);
  }
  const globs = list(options.glob, 'glob');
  let glob: ((relativePath: string) => boolean) | undefined;
  if (globs.length > 0) {
    // A pattern without a slash matches the base name (as in .gitignore and `find -name`); `dot` leaves hidden
    // files to the `hidden` option. micromatch's own `basename` option also strips paths for slashed patterns.
    micromatch ??= load('micromatch') as Micromatch;
    const mm = micromatch;
    const matchers = globs.map((pattern) => {
      const match = mm.matcher(pattern, { dot: true });
      if (pattern.includes('/')) return match;
      return (relativePath: string) => match(relativePath.slice(relativePath.lastIndexOf('/') + 1));
    });
    glob =
      matchers.length === 1
        ? (matchers[0] as (s: string) => boolean)
        : (relativePath) => matchers.some((match) => match(relativePath));
  }
  const ignorePatterns = list(options.ignore, 'ignore');
  const ignoreFiles = list(options.ignoreFiles, 'ignoreFiles');
  for (const name of ignoreFiles) {
    if (name === '' || name.includes('/'))
      throw invalid(`ignoreFiles must hold base names, not ${JSON.stringify(name)}`);
  }
  const onError = options.onError ?? (() => 'throw' as const);
  if (typeof onError !== 'function') throw invalid('option onError must be a function');
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw invalid('option onProgress must be a function');
  }
  return {
    type,
    glob,
    ignore: ignorePatterns.length > 0 ? createIgnore().add(ignorePatterns) : undefined,
    ignoreFiles,
    maxDepth,
    hidden: options.hidden ?? true,
    followSymlinks: options.followSymlinks ?? false,
    stat: options.stat ?? false,
    syncStat: options.syncStat ?? false,
    syncReaddir: options.syncReaddir ?? false,
    sort: options.sort ?? false,
    concurrency,
    signal: options.signal,
    onError,
    onProgress: options.onProgress,
  };
}
