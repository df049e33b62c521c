import { lstatSync, type Stats, statSync } from 'node:fs';
import type { FsPath } from './fs-path.js';

/** Numbers per path in the output of {@link statSlice}: status, size, mtimeMs, dev, ino, nlink. */
export const STAT_FIELDS = 6;

/** The status of a path in the output of {@link statSlice}. */
export const StatStatus = {
  File: 0,
  /** Vanished since the walk listed it. */
  Gone: 1,
  /** No longer a regular file. */
  NotFile: 2,
  /** `stat` failed: the error is passed to `onError`. */
  Failed: 3,
} as const;

/**
 * Stats `paths` synchronously into `out` ({@link STAT_FIELDS} numbers per path, from `out[0]`): flat numbers
 * instead of a `Stats` object (with its four `Date`s) kept per file, and the same code on either thread.
 */
export function statSlice(
  paths: readonly FsPath[],
  follow: boolean,
  out: Float64Array,
  onError: (index: number, error: unknown) => void,
): void {
  const statOf = follow ? statSync : lstatSync;
  for (let i = 0; i < paths.length; i++) {
    const at = i * STAT_FIELDS;
    let stats: Stats | undefined;
    try {
      stats = statOf(paths[i]!, { throwIfNoEntry: false });
    } catch (error) {
      out[at] = StatStatus.Failed;
      onError(i, error);
      continue;
    }
    if (stats === undefined) out[at] = StatStatus.Gone;
    else if (!stats.isFile()) out[at] = StatStatus.NotFile;
    else {
      out[at] = StatStatus.File;
      out[at + 1] = stats.size;
      out[at + 2] = stats.mtimeMs;
      out[at + 3] = stats.dev;
      out[at + 4] = stats.ino;
      out[at + 5] = stats.nlink;
    }
  }
}
