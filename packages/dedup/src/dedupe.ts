import { constants, type Stats } from 'node:fs';
import { chmod, copyFile, link, lstat, rename, symlink, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import { DedupError, fromErrno } from '@fsw/errors';
import { crypto } from './internal/builtins.js';
import { CompareReadError, filesEqual } from './internal/compare.js';
import { bytesToLatin1, type FsPath, latin1ToBytes } from './internal/fs-path.js';
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

/** One name of a group: `path` to show, `fs` for every fs call (the exact bytes of a name not valid UTF-8). */
interface Name {
  readonly path: string;
  readonly raw: Buffer | undefined;
  readonly fs: FsPath;
}

interface Inode {
  readonly names: Name[];
  readonly stat: Stats;
}

/**
 * Acts on groups found by {@link findDuplicates}: keeps one copy of each group and replaces every other path by a
 * hard link, reflink or symlink to it, or deletes it. Before touching a path it re-checks, byte for byte, that the
 * file still equals the kept one (it may have changed since the scan); replacements are atomic (the link is made
 * under a temporary name in the same directory, then renamed over the path); the kept file is never touched, so the
 * last copy is never removed. Paths that cannot be handled are skipped with the reason; nothing is thrown for them.
 * A name that is not valid UTF-8 (see `DuplicateGroup.rawPaths`) is acted on through its exact bytes only (stat,
 * comparison, temporary name, link or symlink target, rename, deletion), never through its lossy `paths` string;
 * `done` and `skipped` then carry those bytes as `rawPath` (and `keptRawPath`).
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
  const skip = (name: Name, error: DedupError) =>
    skipped.push({
      path: name.path,
      ...(name.raw !== undefined ? { rawPath: name.raw } : {}),
      code: error.code,
      reason: error.message,
      error,
    });
  const did = (name: Name, kept: Name) =>
    done.push({
      path: name.path,
      ...(name.raw !== undefined ? { rawPath: name.raw } : {}),
      action,
      keptPath: kept.path,
      ...(kept.raw !== undefined ? { keptRawPath: kept.raw } : {}),
    });

  for (const group of groups) {
    options.signal?.throwIfAborted();
    // Who names what right now: the scan may be stale.
    const inodes = new Map<string, Inode>();
    const seen = new Set<string>();
    for (const [i, path] of group.paths.entries()) {
      const raw = group.rawPaths?.[i];
      // The lossy string of a name that is not valid UTF-8 may name another file, or none: only its bytes are used.
      const name: Name = { path, raw, fs: raw ?? path };
      // By bytes: two names with one lossy form are two names.
      const id = raw === undefined ? path : `\0${bytesToLatin1(raw)}`;
      if (seen.has(id)) continue;
      seen.add(id);
      let stat: Stats;
      try {
        stat = await lstat(name.fs);
      } catch (error) {
        skip(name, fromErrno(error, { path, family: DedupError, action: 'stat' }));
        continue;
      }
      if (!stat.isFile()) {
        skip(name, new DedupError('E_NOT_FILE', `not a regular file any more: ${path}`, { path }));
        continue;
      }
      const key = `${stat.dev}:${stat.ino}`;
      const inode = inodes.get(key);
      if (inode) inode.names.push(name);
      else inodes.set(key, { names: [name], stat });
    }
    const all = [...inodes.values()];
    for (const inode of all) inode.names.sort(compareNames);
    all.sort((a, b) => compareNames(a.names[0]!, b.names[0]!));
    const kept = chooseKept(all, keep);
    if (kept === undefined) continue;
    const keptName = kept.names[0]!;
    const keptPath = keptName.path;

    for (const inode of all) {
      if (inode === kept) continue;
      options.signal?.throwIfAborted();
      const first = inode.names[0]!;
      const skipAll = (error: (path: string) => DedupError) => {
        for (const name of inode.names) skip(name, error(name.path));
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
        equal = inode.stat.size === kept.stat.size && (await filesEqual(keptName.fs, first.fs, options));
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
      const changed = (await sameFile(keptName.fs, kept.stat)) ? undefined : keptPath;
      let handled = 0;
      for (const name of inode.names) {
        const path = name.path;
        if (changed !== undefined || !(await sameFile(name.fs, inode.stat))) {
          skip(
            name,
            new DedupError('E_CHANGED', `changed while being compared: ${changed ?? path}`, { path }),
          );
          continue;
        }
        if (dryRun) {
          did(name, keptName);
          handled++;
          continue;
        }
        const error = await replace(action, keptName, name, inode.stat);
        if (error === undefined) {
          did(name, keptName);
          handled++;
        } else {
          if (action === 'reflink' && error.code !== 'E_PERMISSION' && error.code !== 'E_NO_SPACE') {
            noReflink.set(inode.stat.dev, error);
          }
          skip(name, error);
        }
      }
      // The space comes back only when no name of the file is left (names outside the group keep it alive).
      if (handled === inode.names.length && handled >= inode.stat.nlink) bytesSaved += inode.stat.size;
    }
  }
  return { dryRun, done, skipped, bytesSaved };
}

/** Sort order of the names: by the shown path, lossy forms that tie by their bytes (as the groups' `paths`). */
function compareNames(a: Name, b: Name): number {
  if (a.path !== b.path) return a.path < b.path ? -1 : 1;
  if (a.raw === undefined && b.raw === undefined) return 0;
  return Buffer.compare(a.raw ?? Buffer.from(a.path), b.raw ?? Buffer.from(b.path));
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
  return Math.min(...inode.names.map((n) => n.path.length));
}

async function sameFile(path: FsPath, before: Stats): Promise<boolean> {
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

const SLASH = 0x2f;

/** How much of a file's name its temp name repeats: the temp name stays well under NAME_MAX (255 bytes). */
const TEMP_NAME_BYTES = 100;

/**
 * A fresh name beside `path`, in its directory; of its exact bytes for a name that is not valid UTF-8. It repeats at
 * most the first {@link TEMP_NAME_BYTES} bytes of the name (whole characters), so that a file whose name is near the
 * length limit can still be replaced.
 */
function tempNameFor(path: FsPath): FsPath {
  const suffix = `.fsw-dedup-${crypto().randomBytes(6).toString('hex')}`;
  if (typeof path === 'string') {
    const name = Buffer.from(basename(path));
    let end = Math.min(name.length, TEMP_NAME_BYTES);
    // Back to the start of a character: the cut must not split one.
    while (end < name.length && (name[end]! & 0xc0) === 0x80) end--;
    return join(dirname(path), `.${name.toString('utf8', 0, end)}${suffix}`);
  }
  const slash = path.lastIndexOf(SLASH);
  const name = path.subarray(slash + 1);
  return Buffer.concat([
    path.subarray(0, slash + 1),
    Buffer.from('.'),
    name.subarray(0, TEMP_NAME_BYTES),
    Buffer.from(suffix),
  ]);
}

/** The target of a symlink at `path` to `kept`, relative to the link's directory: bytes when either is bytes. */
function symlinkTarget(kept: FsPath, path: FsPath): FsPath {
  if (typeof kept === 'string' && typeof path === 'string') {
    return relative(dirname(resolve(path)), resolve(kept));
  }
  // The POSIX path functions look only at '/' and '.': on latin1 strings (one character per byte) they work on the
  // exact bytes. The working directory goes in as its UTF-8 bytes too.
  const latin1 = (p: FsPath) => bytesToLatin1(typeof p === 'string' ? Buffer.from(p) : p);
  const cwd = latin1(process.cwd());
  const from = posix.dirname(posix.resolve(cwd, latin1(path)));
  return latin1ToBytes(posix.relative(from, posix.resolve(cwd, latin1(kept))));
}

/** Replaces `name` by a link to (or a reflinked copy of) `kept`, or deletes it; returns the error if it failed. */
async function replace(
  action: DedupeAction,
  kept: Name,
  name: Name,
  stat: Stats,
): Promise<DedupError | undefined> {
  const path = name.path;
  if (action === 'delete') {
    try {
      await unlink(name.fs);
      return undefined;
    } catch (error) {
      return fromErrno(error, { path, family: DedupError, action: 'delete' });
    }
  }
  const tmp = tempNameFor(name.fs);
  let step = 'hard-link';
  let renamed = false;
  try {
    if (action === 'hardlink') {
      await link(kept.fs, tmp);
    } else if (action === 'symlink') {
      step = 'create symlink';
      await symlink(symlinkTarget(kept.fs, name.fs), tmp);
    } else {
      step = 'reflink';
      try {
        await copyFile(kept.fs, tmp, constants.COPYFILE_FICLONE_FORCE);
      } catch (error) {
        const errno = (error as { code?: unknown }).code;
        if (typeof errno === 'string' && UNSUPPORTED.has(errno)) {
          return new DedupError(
            errno === 'EXDEV' ? 'E_CROSS_DEVICE' : 'E_IO',
            `cannot reflink ${path} to ${kept.path}: the filesystem does not support reflinks (${errno}); use a hard link or symlink instead`,
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
    await rename(tmp, name.fs);
    renamed = true;
    return undefined;
  } catch (error) {
    return fromErrno(error, { path, family: DedupError, action: `replace (${step})` });
  } finally {
    // A failed step may have left the temporary name (a link, a partial clone): never leave it behind.
    if (!renamed) await unlink(tmp).catch(() => {});
  }
}
