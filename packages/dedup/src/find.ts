import { DedupError, type FswError } from '@fsw/errors';
import { type WalkOptions, walk } from '@fsw/walk';
import { DigestCache } from './cache.js';
import { FileMerger } from './files.js';
import { cachePathOf, concurrencyOf, runScan } from './group.js';
import { StatQueue } from './stat-paths.js';
import type { DuplicateGroup, DuplicateScan, FindDuplicatesOptions } from './types.js';

function sizeLimit(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value >= 0) || (!Number.isSafeInteger(value) && value !== Number.POSITIVE_INFINITY)) {
    throw new DedupError(
      'E_INVALID_ARGUMENT',
      `${name} must be a whole number of bytes, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Finds duplicate files under `paths` (directories or files) and returns the groups with the counts of the scan.
 * The roots are walked with `@fsw/walk` (its filters apply), files are sized, then run through the stages
 * (`defaultStages()` unless `stages` is given).
 * @throws WalkError `E_NOT_FOUND` / `E_PERMISSION` for a root that cannot be read, and for failures below a root
 *   that `onError` does not skip
 * @throws HashError / DedupError for a file that cannot be read (`E_NOT_FOUND`, `E_PERMISSION`, `E_CHANGED`...),
 *   unless `onError` skips it; DedupError `E_INVALID_ARGUMENT` for bad options
 * @throws the signal's reason when `signal` aborts
 */
export async function scanDuplicates(
  paths: string | readonly string[],
  options: FindDuplicatesOptions = {},
): Promise<DuplicateScan> {
  const roots = typeof paths === 'string' ? [paths] : [...paths];
  if (roots.length === 0) throw new DedupError('E_INVALID_ARGUMENT', 'no path to search for duplicates');
  const minSize = sizeLimit('minSize', options.minSize, 1);
  const maxSize = sizeLimit('maxSize', options.maxSize, Number.POSITIVE_INFINITY);
  concurrencyOf(options.concurrency);
  const userOnError = options.onError ?? (() => 'throw' as const);
  let skipped = 0;
  const onError = (error: FswError): 'skip' | 'throw' => {
    const decision = userOnError(error);
    if (decision === 'skip') skipped++;
    return decision;
  };
  const walkOptions: WalkOptions = {
    type: 'file',
    // Stats are taken here, synchronously, in slices: a quarter of the CPU time of one asynchronous stat per file.
    stat: false,
    // Directories too: a thread-pool round trip per directory cost more than twice the listing itself.
    syncReaddir: true,
    onError,
    ...(options.glob !== undefined ? { glob: options.glob } : {}),
    ...(options.ignore !== undefined ? { ignore: options.ignore } : {}),
    ...(options.ignoreFiles !== undefined ? { ignoreFiles: options.ignoreFiles } : {}),
    ...(options.hidden !== undefined ? { hidden: options.hidden } : {}),
    ...(options.maxDepth !== undefined ? { maxDepth: options.maxDepth } : {}),
    ...(options.followSymlinks !== undefined ? { followSymlinks: options.followSymlinks } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  };
  const cachePath = cachePathOf(options.cache);
  // Read (and parse) the cache while the walk waits on the disk; a failure surfaces when it is awaited.
  const loading = cachePath === undefined ? undefined : DigestCache.load(cachePath);
  loading?.catch(() => {});
  options.onProgress?.({ stage: 'walk', done: 0, total: roots.length, bytes: 0 });
  const merger = new FileMerger(roots.length === 1 && options.followSymlinks !== true);
  const stats = new StatQueue(merger, {
    follow: options.followSymlinks === true,
    minSize,
    maxSize,
    concurrency: concurrencyOf(options.concurrency),
    signal: options.signal,
    onProgress: options.onProgress,
    onError,
  });
  try {
    // Entries in batches, as read: each is dropped once its path is taken (no entry object per file kept until the
    // walk ends), and the helper thread stats the paths listed so far while the walk goes on.
    for (const root of roots) {
      for await (const batch of walk(root, walkOptions).batches()) {
        for (const entry of batch) {
          if (entry.type !== 'file') continue;
          stats.add(entry.path, entry.rawPath);
        }
      }
    }
  } catch (error) {
    await stats.dispose();
    throw error;
  }
  options.onProgress?.({ stage: 'walk', done: roots.length, total: roots.length, bytes: 0 });
  await stats.finish();
  const scan = await runScan(merger.finish(), { ...options, onError }, loading);
  return { ...scan, skipped };
}

/**
 * Finds duplicate files under `paths`: groups of byte-identical files, sorted by wasted bytes (largest first), each
 * with its paths sorted. Hard links are one file (read once, listed together, never counted as waste); a file
 * reached through overlapping roots counts once; symlinks are not followed unless `followSymlinks` is set; empty
 * files are never duplicates (`minSize` 1).
 *
 * ```ts
 * const groups = await findDuplicates(['~/Pictures', '/mnt/backup/Pictures'], { minSize: 1024, cache: true });
 * ```
 * @throws as {@link scanDuplicates}
 */
export async function findDuplicates(
  paths: string | readonly string[],
  options: FindDuplicatesOptions = {},
): Promise<DuplicateGroup[]> {
  return [...(await scanDuplicates(paths, options)).groups];
}
