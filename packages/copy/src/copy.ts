import { resolveOptions } from './internal/options.js';
import { makePlan } from './internal/plan.js';
import { execute } from './internal/run.js';
import type { CopyOptions, CopyResult } from './types.js';

/**
 * Copies files and directories with the semantics of `cp -r`: when `destination` is an existing directory the
 * sources go inside it, else the (single) source is copied to `destination`; a directory source is copied
 * recursively. Everything is planned first (sources checked, conflicts decided, totals known), then files are
 * copied `concurrency` at a time, each to a temp name in its destination folder and renamed into place when
 * complete: a crash, an abort or a full disk never leaves a truncated file under a final name.
 *
 * @param sources A path or a list of paths.
 * @param destination The directory to copy into, or the new name of a single source.
 * @param options See {@link CopyOptions}.
 * @returns What was copied, skipped and failed.
 * @throws CopyError `E_NOT_FOUND` for a missing source (before anything is written); `E_INVALID_ARGUMENT` for a
 *   directory copied into or onto itself, a file onto itself, or bad options; `E_NOT_DIR` for several sources and a
 *   destination that is not a directory; `E_EXISTS` for an existing destination under `overwrite: 'error'`
 *   (nothing is written for that file); `E_NO_SPACE` when the disk fills (the partial file is removed, and
 *   `error.completed` tells what was copied). Failures of single entries (`E_PERMISSION`, `E_EXISTS`...) as
 *   `onError` decides; errors after copying began carry `completed` ({@link IncompleteCopyError}).
 *   Aborting `signal` rejects with `signal.reason`.
 */
export async function copy(
  sources: string | readonly string[],
  destination: string,
  options?: CopyOptions,
): Promise<CopyResult> {
  const resolved = resolveOptions(options);
  const plan = await makePlan(sources, destination, resolved, 'copy');
  return execute(plan, resolved, 'copy');
}

/**
 * Moves files and directories, with the destination semantics of {@link copy} (and of `mv`). Within one
 * filesystem an entry is renamed (a whole directory in one rename when its destination does not exist and no
 * filter applies); across filesystems (EXDEV) each file is copied, checked (size and unchanged source, or every
 * byte with `verify: 'content'`), renamed into place, and only then is its source removed. A source whose copy
 * failed is never removed; source directories are removed once empty.
 *
 * @param sources A path or a list of paths.
 * @param destination The directory to move into, or the new name of a single source.
 * @param options See {@link CopyOptions}.
 * @returns What was moved, skipped and failed.
 * @throws CopyError as {@link copy}, plus `E_CHANGED` when a source changed while it was copied across
 *   filesystems (the source is kept).
 */
export async function move(
  sources: string | readonly string[],
  destination: string,
  options?: CopyOptions,
): Promise<CopyResult> {
  const resolved = resolveOptions(options);
  const plan = await makePlan(sources, destination, resolved, 'move');
  return execute(plan, resolved, 'move');
}
