import { constants, type Stats } from 'node:fs';
import { chmod, copyFile, link, lstat, rename, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { DedupError, fromErrno } from '@fsw/errors';
import { crypto } from './internal/builtins.js';
import { CompareReadError, filesEqual } from './internal/compare.js';
import type {
  DedupeAction,
  DedupeDone,
  DedupeKeep,
  DedupeOptions,
  DedupeResult,
  DedupeSkip,
  DuplicateGroup,
} from './types.js';

const ACTIONS: readonly DedupeAction[] = ['hardlink', 'reflink', 'symlink', 'delete'];
const KEEPS: readonly DedupeKeep[] = ['first', 'oldest', 'newest', 'shortest-path'];
const UNSUPPORTED = new Set(['ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'ENOTTY', 'EINVAL', 'EXDEV']);

interface Inode {
  readonly paths: string[];
  readonly stat: Stats;
}

/**
 * Acts on groups found by {@link findDuplicates}: keeps one copy of each group and replaces every other path by a
 * hard link, reflink or symlink to it, or deletes it. Before touching a path it re-checks, byte for byte, that the
 * file still equals the kept one (it may have changed since the scan); replacements are atomic (the link is made
 * under a temporary name in the same directory, then renamed over the path); the kept file is never touched, so the
 * last copy is never removed. Paths that cannot be handled are skipped with the reason; nothing is thrown for them.
 * Names that are not valid UTF-8 (see `DuplicateGroup.rawPaths`) are left alone, skipped as `E_INVALID_ARGUMENT`.
 * @throws DedupError `E_INVALID_ARGUMENT` for an unknown `action` or `keep`
 * @throws the signal's reason when `signal` aborts (between files)
 */
export async function dedupe(
  groups: readonly DuplicateGroup[],
  options: DedupeOptions = {},
): Promise<DedupeResult> {
  const action = options.action ?? 'hardlink';
  const keep = options.keep ?? 'first';
  const dryRun = options.dryRun ?? false;
  if (!ACTIONS.includes(action)) {
    throw new DedupError(
      'E_INVALID_ARGUMENT',
      `unknown dedupe action '${action}' (expected ${ACTIONS.join(', ')})`,
    );
  }
  if (!KEEPS.includes(keep)) {
    throw new DedupError('E_INVALID_ARGUMENT', `unknown keep rule '${keep}' (expected ${KEEPS.join(', ')})`);
  }
  const done: DedupeDone[] = [];
  const skipped: DedupeSkip[] = [];
  const noReflink = new Map<number, DedupError>();
  let bytesSaved = 0;
  const skip = (path: string, error: DedupError) =>
    skipped.push({ path, code: error.code, reason: error.message, error });

  for (const group of groups) {
    options.signal?.throwIfAborted();
    // Who names what right now: the scan may be stale.
    const inodes = new Map<string, Inode>();
    const raw = group.rawPaths;
    const seen = new Set<string>();
    for (const [i, path] of group.paths.entries()) {
      if (raw?.[i] !== undefined) {
        // Its string is a lossy form that may name another file, or none: nothing is done through it.
        skip(
          path,
          new DedupError(
            'E_INVALID_ARGUMENT',
            `left alone: the name of ${path} is not valid UTF-8, which dedupe() does not act on yet`,
            { path },
          ),
        );
        continue;
      }
      if (seen.has(path)) continue;
      seen.add(path);
      let stat: Stats;
      try {
        stat = await lstat(path);
      } catch (error) {
        skip(path, fromErrno(error, { path, family: DedupError, action: 'stat' }));
        continue;
      }
      if (!stat.isFile()) {
        skip(path, new DedupError('E_NOT_FILE', `not a regular file any more: ${path}`, { path }));
        continue;
      }
      const key = `${stat.dev}:${stat.ino}`;
      const inode = inodes.get(key);
      if (inode) inode.paths.push(path);
      else inodes.set(key, { paths: [path], stat });
    }
    const all = [...inodes.values()];
    for (const inode of all) inode.paths.sort(comparePaths);
    all.sort((a, b) => comparePaths(a.paths[0]!, b.paths[0]!));
    const kept = chooseKept(all, keep);
    if (kept === undefined) continue;
    const keptPath = kept.paths[0]!;

    for (const inode of all) {
      if (inode === kept) continue;
      options.signal?.throwIfAborted();
      const first = inode.paths[0]!;
      const skipAll = (error: (path: string) => DedupError) => {
        for (const path of inode.paths) skip(path, error(path));
      };
      if (action === 'hardlink' && inode.stat.dev !== kept.stat.dev) {
        skipAll(
          (path) =>
            new DedupError(
              'E_CROSS_DEVICE',
              `cannot hard-link ${path} to ${keptPath}: they are on different devices`,
              {
                path,
              },
            ),
        );
        continue;
      }
      const reflinkError = action === 'reflink' ? noReflink.get(inode.stat.dev) : undefined;
      if (reflinkError) {
        skipAll(
          (path) => new DedupError(reflinkError.code, reflinkError.message, { path, cause: reflinkError }),
        );
        continue;
      }
      let equal: boolean;
      try {
        equal = inode.stat.size === kept.stat.size && (await filesEqual(keptPath, first, options));
      } catch (error) {
        if (!(error instanceof CompareReadError)) throw error;
        skipAll(
          (path) => new DedupError(error.error.code, error.error.message, { path, cause: error.error }),
        );
        continue;
      }
      if (!equal) {
        skipAll(
          (path) =>
            new DedupError('E_CHANGED', `changed since the scan: ${path} no longer equals ${keptPath}`, {
              path,
            }),
        );
        continue;
      }
      // Neither side may have changed while they were compared.
      const changed = (await sameFile(keptPath, kept.stat)) ? undefined : keptPath;
      let handled = 0;
      for (const path of inode.paths) {
        if (changed !== undefined || !(await sameFile(path, inode.stat))) {
          skip(
            path,
            new DedupError('E_CHANGED', `changed while being compared: ${changed ?? path}`, { path }),
          );
          continue;
        }
        if (dryRun) {
          done.push({ path, action, keptPath });
          handled++;
          continue;
        }
        const error = await replace(action, keptPath, path, inode.stat);
        if (error === undefined) {
          done.push({ path, action, keptPath });
          handled++;
        } else {
          if (action === 'reflink' && error.code !== 'E_PERMISSION' && error.code !== 'E_NO_SPACE') {
            noReflink.set(inode.stat.dev, error);
          }
          skip(path, error);
        }
      }
      // The space comes back only when no name of the file is left (names outside the group keep it alive).
      if (handled === inode.paths.length && handled >= inode.stat.nlink) bytesSaved += inode.stat.size;
    }
  }
  return { dryRun, done, skipped, bytesSaved };
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function chooseKept(inodes: readonly Inode[], keep: DedupeKeep): Inode | undefined {
  let best: Inode | undefined;
  for (const inode of inodes) {
    if (best === undefined) {
      best = inode;
      continue;
    }
    // Ties keep the earlier inode: inodes are in the order of their first path.
    const better =
      keep === 'oldest'
        ? inode.stat.mtimeMs < best.stat.mtimeMs
        : keep === 'newest'
          ? inode.stat.mtimeMs > best.stat.mtimeMs
          : keep === 'shortest-path'
            ? shortest(inode) < shortest(best)
            : false;
    if (better) best = inode;
  }
  return best;
}

function shortest(inode: Inode): number {
  return Math.min(...inode.paths.map((p) => p.length));
}

async function sameFile(path: string, before: Stats): Promise<boolean> {
  try {
    const now = await lstat(path);
    return (
      now.isFile() &&
      now.dev === before.dev &&
      now.ino === before.ino &&
      now.size === before.size &&
      now.mtimeMs === before.mtimeMs
    );
  } catch {
    return false;
  }
}

function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.fsw-dedup-${crypto().randomBytes(6).toString('hex')}`);
}

/** Replaces `path` by a link to (or a reflinked copy of) `keptPath`, or deletes it; returns the error if it failed. */
async function replace(
  action: DedupeAction,
  keptPath: string,
  path: string,
  stat: Stats,
): Promise<DedupError | undefined> {
  if (action === 'delete') {
    try {
      await unlink(path);
      return undefined;
    } catch (error) {
      return fromErrno(error, { path, family: DedupError, action: 'delete' });
    }
  }
  const tmp = tempNameFor(path);
  let step = 'hard-link';
  try {
    if (action === 'hardlink') {
      await link(keptPath, tmp);
    } else if (action === 'symlink') {
      step = 'create symlink';
      await symlink(relative(dirname(resolve(path)), resolve(keptPath)), tmp);
    } else {
      step = 'reflink';
      try {
        await copyFile(keptPath, tmp, constants.COPYFILE_FICLONE_FORCE);
      } catch (error) {
        const errno = (error as { code?: unknown }).code;
        if (typeof errno === 'string' && UNSUPPORTED.has(errno)) {
          return new DedupError(
            errno === 'EXDEV' ? 'E_CROSS_DEVICE' : 'E_IO',
            `cannot reflink ${path} to ${keptPath}: the filesystem does not support reflinks (${errno}); use a hard link or symlink instead`,
            { path, cause: error },
          );
        }
        throw error;
      }
      // A reflinked copy is a new file: give it the replaced file's mode and times.
      step = 'set metadata';
      await chmod(tmp, stat.mode & 0o7777);
      await utimes(tmp, stat.atime, stat.mtime);
    }
    step = 'rename';
    await rename(tmp, path);
    return undefined;
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => {});
    return fromErrno(error, { path, family: DedupError, action: `replace (${step})` });
  } finally {
    if (step !== 'rename') await rm(tmp, { force: true }).catch(() => {});
  }
}
