import { DedupError, type DedupErrorCode, type FswError, fromErrno } from '@fsw/errors';
import type { FileMerger } from './files.js';
import { HELPER_MIN_FILES, startHelper } from './internal/helper.js';
import type { StatReply } from './internal/small-worker.js';
import { STAT_FIELDS, StatStatus, statSlice } from './internal/stat-slice.js';
import type { DedupProgress } from './types.js';

/** Paths per slice: ~1,024 `lstat` calls take a few ms, the longest the event loop waits. */
const STAT_SLICE = 1024;

/** Options of {@link statPaths}. */
export interface StatPathsOptions {
  readonly follow: boolean;
  readonly minSize: number;
  readonly maxSize: number;
  readonly concurrency: number;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: DedupProgress) => void) | undefined;
  readonly onError: (error: FswError) => 'skip' | 'throw';
}

/**
 * Stats the listed paths synchronously, in slices of {@link STAT_SLICE} between turns of the event loop, with a
 * helper thread taking slices from the same queue when there are many: `lstat` and the `Stats` object Node builds
 * for it are a large part of a scan of many small files. Adds the regular files within the size limits to
 * `merger`, in the order of `paths`; paths that vanished, are no longer regular files or cannot be stat'ed go to `onError` (in that
 * order too, once every path is stat'ed).
 */
export async function statPaths(
  paths: readonly string[],
  merger: FileMerger,
  options: StatPathsOptions,
): Promise<void> {
  const { signal, onProgress } = options;
  const slices = Math.ceil(paths.length / STAT_SLICE);
  const results: (Float64Array | undefined)[] = new Array(slices);
  const errors = new Map<number, FswError>();
  let next = 0;
  let done = 0;
  let last = performance.now();
  const take = () => (next < slices ? next++ : undefined);
  const pathsOf = (slice: number) => paths.slice(slice * STAT_SLICE, (slice + 1) * STAT_SLICE);
  const finished = (slice: number, facts: Float64Array) => {
    results[slice] = facts;
    done += facts.length / STAT_FIELDS;
    if (onProgress !== undefined && performance.now() - last >= 100) {
      last = performance.now();
      onProgress({ stage: 'stat', done, total: paths.length, bytes: 0 });
    }
  };
  const here = (slice: number) => {
    const part = pathsOf(slice);
    const facts = new Float64Array(part.length * STAT_FIELDS);
    statSlice(part, options.follow, facts, (i, error) => {
      const path = part[i]!;
      errors.set(slice * STAT_SLICE + i, fromErrno(error, { path, family: DedupError, action: 'stat' }));
    });
    finished(slice, facts);
  };
  const helper =
    options.concurrency >= 2 && paths.length >= HELPER_MIN_FILES
      ? startHelper(
          take,
          (slice, id) => ({ op: 'stat', id, follow: options.follow, paths: pathsOf(slice) }),
          (slice, reply: StatReply) => {
            for (const [i, code, message] of reply.errors) {
              const path = paths[slice * STAT_SLICE + i]!;
              errors.set(slice * STAT_SLICE + i, new DedupError(code as DedupErrorCode, message, { path }));
            }
            finished(slice, reply.facts);
          },
        )
      : undefined;
  try {
    for (let slice = take(); slice !== undefined; slice = take()) {
      here(slice);
      await new Promise<void>((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
      helper?.check();
    }
    if (helper !== undefined) for (const slice of await helper.finish()) here(slice);
  } finally {
    await helper?.stop();
  }
  signal?.throwIfAborted();
  for (let slice = 0; slice < slices; slice++) {
    const facts = results[slice]!;
    for (let at = 0, index = slice * STAT_SLICE; at < facts.length; at += STAT_FIELDS, index++) {
      const status = facts[at];
      const path = paths[index]!;
      if (status === StatStatus.File) {
        const size = facts[at + 1]!;
        if (size < options.minSize || size > options.maxSize) continue;
        merger.add(path, size, facts[at + 2]!, facts[at + 3]!, facts[at + 4]!, facts[at + 5]!);
        continue;
      }
      const error =
        status === StatStatus.Failed
          ? errors.get(index)!
          : status === StatStatus.Gone
            ? new DedupError('E_NOT_FOUND', `cannot stat ${path}: no such file (it vanished)`, { path })
            : new DedupError('E_NOT_FILE', `not a regular file any more: ${path}`, { path });
      if (options.onError(error) === 'throw') throw error;
    }
  }
  onProgress?.({ stage: 'stat', done: paths.length, total: paths.length, bytes: 0 });
}
