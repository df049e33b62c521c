import { availableParallelism } from 'node:os';
import { DedupError } from '@fsw/errors';
import { DigestCache, defaultCachePath, MemoryDigests } from './cache.js';
import { defaultStages } from './hash-stages.js';
import { runPipeline } from './pipeline.js';
import type { DedupFile, DuplicateGroup, DuplicateScan, GroupDuplicatesOptions } from './types.js';

/** The default of `concurrency`: one hashing worker per core. */
export const DEFAULT_CONCURRENCY: number = Math.max(2, availableParallelism());

/** Where the cache lives, or undefined for none. */
export function cachePathOf(option: GroupDuplicatesOptions['cache']): string | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return defaultCachePath();
  if (typeof option === 'string' && option !== '') return option;
  throw new DedupError(
    'E_INVALID_ARGUMENT',
    `cache must be a path or a boolean, got ${JSON.stringify(option)}`,
  );
}

/** Checks `concurrency`. */
export function concurrencyOf(value: number | undefined): number {
  if (value === undefined) return DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new DedupError(
      'E_INVALID_ARGUMENT',
      `concurrency must be a positive integer, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Runs the stages over files you listed yourself (distinct inodes: merge hard links into one `DedupFile` with
 * several `paths`), e.g. from a database, and returns the scan with its counts. `findDuplicates` is this over a
 * walk of its roots.
 * @throws DedupError `E_INVALID_ARGUMENT` for bad options; what a stage throws when `onError` does not skip it
 * @throws the signal's reason when `signal` aborts
 */
export function scanFiles(
  files: readonly DedupFile[],
  options: GroupDuplicatesOptions = {},
): Promise<DuplicateScan> {
  return runScan(files, options, undefined);
}

/** {@link scanFiles}, with the cache possibly already being loaded (while the roots were walked). */
export async function runScan(
  files: readonly DedupFile[],
  options: GroupDuplicatesOptions,
  loading: Promise<DigestCache> | undefined,
): Promise<DuplicateScan> {
  const concurrency = concurrencyOf(options.concurrency);
  const cachePath = cachePathOf(options.cache);
  const stages =
    options.stages ??
    defaultStages({
      ...(options.algorithm ? { algorithm: options.algorithm } : {}),
      ...(options.partialBytes !== undefined ? { partialBytes: options.partialBytes } : {}),
      ...(options.partialAlgorithm !== undefined ? { partialAlgorithm: options.partialAlgorithm } : {}),
      ...(options.paranoid !== undefined ? { paranoid: options.paranoid } : {}),
    });
  const cache = cachePath === undefined ? undefined : await (loading ?? DigestCache.load(cachePath));
  const result = await runPipeline(files, {
    stages,
    concurrency,
    digests: cache ?? new MemoryDigests(),
    signal: options.signal,
    onProgress: options.onProgress,
    onError: options.onError,
  });
  if (cachePath !== undefined && cache !== undefined) await cache.save(cachePath);
  return {
    groups: result.groups,
    files: files.length,
    bytesRead: result.bytesRead,
    skipped: result.skipped,
    cacheRebuilt: cache?.rebuilt ?? false,
  };
}

/**
 * The duplicate groups among files you listed yourself; see {@link scanFiles}.
 * @throws as {@link scanFiles}
 */
export async function groupDuplicates(
  files: readonly DedupFile[],
  options: GroupDuplicatesOptions = {},
): Promise<DuplicateGroup[]> {
  return [...(await scanFiles(files, options)).groups];
}
