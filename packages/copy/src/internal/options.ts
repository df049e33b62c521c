import { CopyError } from '@fsw/errors';
import type { CopyFilter, CopyOptions, CopyProgress, OverwritePolicy, ReflinkMode } from '../types.js';

/** {@link CopyOptions} with every default applied, checked once at the boundary. */
export interface Resolved {
  readonly overwrite: OverwritePolicy;
  readonly preserveMode: boolean;
  readonly preserveTimes: boolean;
  readonly follow: boolean;
  readonly reflink: ReflinkMode;
  readonly filter: CopyFilter;
  /** True when the filter can leave something out (then a directory cannot be moved by one rename). */
  readonly filtered: boolean;
  readonly concurrency: number;
  readonly dryRun: boolean;
  readonly fsync: boolean;
  readonly verify: 'size' | 'content';
  readonly signal: AbortSignal | undefined;
  readonly onProgress: ((progress: CopyProgress) => void) | undefined;
  readonly progressIntervalMs: number;
  readonly onError: (error: CopyError) => 'skip' | 'throw';
}

/** Parallel copies by default: large files at once (libuv has 4 pool threads), and a cap on small-file threads. */
export const DEFAULT_CONCURRENCY = 8;

function oneOf<T extends string>(name: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    throw new CopyError(
      'E_INVALID_ARGUMENT',
      `option ${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, not ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Applies defaults and validates.
 * @throws CopyError `E_INVALID_ARGUMENT` for a bad value
 */
export function resolveOptions(options: CopyOptions = {}): Resolved {
  const overwrite = oneOf('overwrite', options.overwrite, ['error', 'skip', 'overwrite', 'newer'], 'error');
  const reflink = oneOf('reflink', options.reflink, ['auto', 'always', 'never'], 'auto');
  const symlinks = oneOf('symlinks', options.symlinks, ['preserve', 'follow'], 'preserve');
  const verify = oneOf('verify', options.verify, ['size', 'content'], 'size');
  const p = options.preserve;
  const preserveMode = typeof p === 'boolean' ? p : (p?.mode ?? true);
  const preserveTimes = typeof p === 'boolean' ? p : (p?.times ?? true);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new CopyError(
      'E_INVALID_ARGUMENT',
      `option concurrency must be a positive integer, not ${String(concurrency)}`,
    );
  }
  const progressIntervalMs = options.progressIntervalMs ?? 100;
  if (!(progressIntervalMs >= 0)) {
    throw new CopyError(
      'E_INVALID_ARGUMENT',
      `option progressIntervalMs must be a number >= 0, not ${String(progressIntervalMs)}`,
    );
  }
  const filter = options.filter ?? {};
  const filtered =
    filter.glob !== undefined ||
    filter.ignore !== undefined ||
    (filter.ignoreFiles !== undefined && filter.ignoreFiles.length > 0) ||
    filter.hidden === false ||
    (filter.maxDepth !== undefined && filter.maxDepth !== Number.POSITIVE_INFINITY);
  return {
    overwrite,
    preserveMode,
    preserveTimes,
    follow: symlinks === 'follow',
    reflink,
    filter,
    filtered,
    concurrency,
    dryRun: options.dryRun === true,
    fsync: options.fsync === true,
    verify,
    signal: options.signal,
    onProgress: options.onProgress,
    progressIntervalMs,
    onError: options.onError ?? (() => 'throw'),
  };
}
