import { lstatSync, type Stats, statSync } from 'node:fs';
import { DedupError, type FswError, fromErrno } from '@fsw/errors';
import { type WalkEntry, type WalkOptions, walkAll } from '@fsw/walk';
import { DigestCache } from './cache.js';
import { type FileFacts, mergeFiles } from './files.js';
import { cachePathOf, concurrencyOf, runScan } from './group.js';
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
  const listed = await Promise.all(roots.map((root) => walkAll(root, walkOptions)));
  const total = listed.reduce((n, entries) => n + entries.length, 0);
  options.onProgress?.({ stage: 'walk', done: roots.length, total: roots.length, bytes: 0 });
  const statOf = options.followSymlinks === true ? statSync : lstatSync;
  const facts: FileFacts[] = [];
  let done = 0;
  let last = performance.now();
  for (const entries of listed) {
    for (const entry of entries) {
      if (++done % STAT_SLICE === 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        options.signal?.throwIfAborted();
        if (options.onProgress && performance.now() - last >= 100) {
          last = performance.now();
          options.onProgress({ stage: 'stat', done, total, bytes: 0 });
        }
      }
      if (entry.type !== 'file') continue;
      if (entry.rawPath !== undefined) {
        unreadableName(entry, onError);
        continue;
      }
      let stats: Stats | undefined;
      try {
        stats = statOf(entry.path, { throwIfNoEntry: false });
      } catch (error) {
        fail(fromErrno(error, { path: entry.path, family: DedupError, action: 'stat' }), onError);
        continue;
      }
      if (stats === undefined || !stats.isFile()) {
        // Gone, or no longer a regular file, since the walk listed it.
        const error =
          stats === undefined
            ? new DedupError('E_NOT_FOUND', `cannot stat ${entry.path}: no such file (it vanished)`, {
                path: entry.path,
              })
            : new DedupError('E_NOT_FILE', `not a regular file any more: ${entry.path}`, {
                path: entry.path,
              });
        fail(error, onError);
        continue;
      }
      if (stats.size < minSize || stats.size > maxSize) continue;
      facts.push({
        path: entry.path,
        size: stats.size,
        mtimeMs: stats.mtimeMs,
        dev: stats.dev,
        ino: stats.ino,
        nlink: stats.nlink,
      });
    }
  }
  options.onProgress?.({ stage: 'stat', done: total, total, bytes: 0 });
  const scan = await runScan(
    mergeFiles(facts, roots.length === 1 && options.followSymlinks !== true),
    { ...options, onError },
    loading,
  );
  return { ...scan, skipped };
}

const STAT_SLICE = 1024;

function fail(error: FswError, onError: (error: FswError) => 'skip' | 'throw'): void {
  if (onError(error) === 'throw') throw error;
}

function unreadableName(entry: WalkEntry, onError: (error: FswError) => 'skip' | 'throw'): void {
  const error = new DedupError(
    'E_INVALID_ARGUMENT',
    `cannot compare ${entry.path}: its name is not valid UTF-8, which @fsw/dedup does not handle yet`,
    { path: entry.path },
  );
  if (onError(error) === 'throw') throw error;
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
