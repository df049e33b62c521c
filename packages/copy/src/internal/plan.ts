import type { Stats } from 'node:fs';
import { lstat, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { CopyError, fromErrno, WalkError } from '@fsw/errors';
import { type WalkEntry, walkAll } from '@fsw/walk';
import pLimit from 'p-limit';
import { errnoOf, type Job } from './file.js';
import type { Resolved } from './options.js';

/** One source argument and where it goes. */
export interface Root {
  readonly src: string;
  readonly target: string;
  readonly kind: 'file' | 'dir' | 'symlink';
  /** The target existed before (a directory being merged into, or a file being replaced). */
  readonly targetExisted: boolean;
  /** Learnt on the first EXDEV: later entries go straight to copy + remove. */
  crossDevice: boolean;
  /** `move` may try renaming the whole root at once (target absent, nothing filtered out). */
  readonly renameWhole: boolean;
  /** Set once the whole root was renamed (its jobs and dirs are done), or its rename failed (nothing of it moves). */
  done: boolean;
  /**
   * Failures of single entries (a FIFO, an unreadable directory...) found while planning a root that may be renamed
   * whole: moot if that rename succeeds (everything goes with the folder, as with `mv`), reported if the move falls
   * back to entry by entry.
   */
  readonly deferred: CopyError[];
  /** The jobs and directories below this root. */
  readonly jobs: Job[];
  readonly dirs: DirJob[];
}

/** A directory of the destination: unless it existed, created, and given the source's metadata at the end. */
export interface DirJob {
  readonly src: string;
  readonly dest: string;
  readonly depth: number;
  readonly existed: boolean;
  readonly mode: number;
  readonly mtimeMs: number;
}

/** Everything decided before the first byte is written. */
export interface Plan {
  readonly roots: Root[];
  readonly totalBytes: number;
  readonly totalFiles: number;
  skipped: number;
  errors: number;
}

/** A path ending in a separator, which must name a directory. */
const TRAILING_SLASH = /[\\/]$/;

/** Differences in mtime smaller than this are rounding (utimes takes a double of seconds), not "newer". */
const MTIME_EPSILON_MS = 0.001;

function invalid(message: string, path?: string): CopyError {
  return new CopyError('E_INVALID_ARGUMENT', message, path === undefined ? {} : { path });
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw error;
  }
}

function isInside(child: string, parent: string): boolean {
  return child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/** What a run of the planner shares: the options, the verb for messages, and the error policy. */
interface Planner {
  readonly options: Resolved;
  readonly verb: 'copy' | 'move';
  readonly plan: Plan;
  /** Hands a per-entry failure to onError: returns normally on 'skip' (counted), throws on 'throw'. */
  readonly report: (error: CopyError) => void;
}

/**
 * Resolves sources and destination with `cp -r` semantics, refuses what cannot be done (missing sources, a
 * directory into itself, several sources onto one non-directory), walks directory sources, and decides every
 * conflict up front so that totals are exact before anything is written.
 * @throws CopyError `E_NOT_FOUND`, `E_NOT_DIR`, `E_INVALID_ARGUMENT`, `E_NOT_FILE`; conflicts (`E_EXISTS`,
 *   `E_IS_DIR`, `E_NOT_DIR`) as `onError` decides.
 */
export async function makePlan(
  sources: string | readonly string[],
  destination: string,
  options: Resolved,
  verb: 'copy' | 'move',
): Promise<Plan> {
  const list = typeof sources === 'string' ? [sources] : [...sources];
  if (list.length === 0) throw invalid(`nothing to ${verb}: no source given`);
  for (const s of list) {
    if (typeof s !== 'string' || s === '')
      throw invalid(`a source must be a non-empty path, not ${JSON.stringify(s)}`);
  }
  if (typeof destination !== 'string' || destination === '') {
    throw invalid(`the destination must be a non-empty path, not ${JSON.stringify(destination)}`);
  }
  options.signal?.throwIfAborted();

  const srcs = await Promise.all(
    list.map(async (s) => {
      const src = resolve(s);
      // `cp -r src/. dest` copies the contents of src into dest (not src itself): resolve() would hide the dot.
      const contents = /(^|[\\/])\.[\\/]*$/.test(s);
      // A trailing slash (which resolve() drops too) names a directory, as for cp and mv: `file/` is refused, and
      // `link/` is the directory a symlink points to for a copy, while mv refuses to move it.
      const slash = !contents && TRAILING_SLASH.test(s);
      let st: Stats;
      try {
        st = options.follow || (slash && verb === 'copy') ? await stat(src) : await lstat(src);
      } catch (error) {
        throw fromErrno(error, { path: src, family: CopyError, action: verb });
      }
      if (slash && !st.isDirectory()) {
        throw new CopyError('E_NOT_DIR', `cannot ${verb} ${s}: not a directory`, { path: src });
      }
      return { src, st, contents };
    }),
  );

  const dest = resolve(destination);
  let destStats: Stats | undefined;
  try {
    destStats = await stat(dest);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT')
      throw fromErrno(error, { path: dest, family: CopyError, action: 'stat' });
  }
  const intoDir = destStats?.isDirectory() === true;
  if (!intoDir) {
    if (srcs.length > 1) {
      throw destStats === undefined
        ? new CopyError('E_NOT_FOUND', `cannot ${verb} several sources to ${dest}: no such directory`, {
            path: dest,
          })
        : new CopyError('E_NOT_DIR', `cannot ${verb} several sources to ${dest}: not a directory`, {
            path: dest,
          });
    }
    if (TRAILING_SLASH.test(destination)) {
      if (destStats !== undefined) {
        throw new CopyError('E_NOT_DIR', `cannot ${verb} to ${destination}: not a directory`, { path: dest });
      }
      // `cp -r dir new/` and `mv dir new/` create the directory; a file cannot be given a name ending in a slash.
      const only = srcs[0];
      if (only !== undefined && !only.st.isDirectory()) {
        throw new CopyError(
          'E_NOT_DIR',
          `cannot ${verb} ${only.src} to ${destination}: no such directory (a name ending in / must be a directory)`,
          { path: dest },
        );
      }
    }
    const parent = dirname(dest);
    let parentStats: Stats;
    try {
      parentStats = await stat(parent);
    } catch (error) {
      throw fromErrno(error, { path: parent, family: CopyError, action: `${verb} into directory` });
    }
    if (!parentStats.isDirectory()) {
      throw new CopyError('E_NOT_DIR', `cannot ${verb} into ${parent}: not a directory`, { path: parent });
    }
  }

  const plan: Plan = { roots: [], totalBytes: 0, totalFiles: 0, skipped: 0, errors: 0 };
  const planner: Planner = {
    options,
    verb,
    plan,
    report(error) {
      if (options.onError(error) === 'throw') throw error;
      plan.errors++;
    },
  };

  const targets = new Map<string, string>();
  const checked: { src: string; st: Stats; target: string; targetStats: Stats | undefined }[] = [];
  for (const { src, st, contents } of srcs) {
    const target = intoDir && !(contents && st.isDirectory()) ? join(dest, basename(src)) : dest;
    const previous = targets.get(target);
    if (previous !== undefined) {
      throw invalid(`cannot ${verb} both ${previous} and ${src} to ${target}`, target);
    }
    targets.set(target, src);
    const targetStats = await lstatOrUndefined(target);
    await refuseSelf(verb, src, st, target, targetStats);
    checked.push({ src, st, target, targetStats });
  }

  for (const { src, st, target, targetStats } of checked) {
    options.signal?.throwIfAborted();
    await planRoot(planner, src, st, target, targetStats);
  }
  let totalBytes = 0;
  let totalFiles = 0;
  for (const root of plan.roots) {
    totalFiles += root.jobs.length;
    for (const job of root.jobs) totalBytes += job.size;
  }
  return { ...plan, totalBytes, totalFiles };
}

/**
 * Whether `src` is, or points at, the existing destination (`existing`, its lstat), so that writing it over the
 * destination would destroy it: the same inode (one path, or two hard links: a move's rename() would do nothing), or a
 * symlink that resolves to the file the destination is (its copy would replace that file's name with a link to
 * itself), or that names the destination directly when this is itself a symlink (its copy would point at itself). A
 * regular file costs nothing more; a symlink one `stat`, or a `readlink` and an `lstat`.
 */
async function isSameFile(
  src: string,
  st: { readonly dev?: number | undefined; readonly ino?: number | undefined },
  symlink: boolean,
  existing: Stats,
): Promise<boolean> {
  if (st.dev === existing.dev && st.ino === existing.ino) return true;
  if (!symlink) return false;
  try {
    if (!existing.isSymbolicLink()) {
      const target = await stat(src);
      return target.dev === existing.dev && target.ino === existing.ino;
    }
    const text = await readlink(src);
    // Concatenated, not joined: the kernel resolves '..' after following the directories, join() before.
    const named = await lstat(isAbsolute(text) ? text : `${dirname(src)}${sep}${text}`);
    return named.dev === existing.dev && named.ino === existing.ino;
  } catch {
    // Dangling or looping: the link names nothing that exists, so not the destination.
    return false;
  }
}

function sameFileError(verb: string, src: string, dest: string, symlink: boolean): CopyError {
  return invalid(
    symlink
      ? `cannot ${verb} ${src} onto ${dest}: the symlink points to it (the destination would be lost)`
      : `cannot ${verb} ${src} onto ${dest}: they are the same file`,
    dest,
  );
}

/**
 * Refuses a directory copied into or onto itself, and a file copied onto itself (real paths, so symlinks too): the
 * same file under another name (a hard link), or a symlink onto the file it points to.
 */
async function refuseSelf(
  verb: string,
  src: string,
  st: Stats,
  target: string,
  targetStats: Stats | undefined,
): Promise<void> {
  if (targetStats !== undefined && targetStats.dev === st.dev && targetStats.ino === st.ino) {
    throw invalid(
      `cannot ${verb} ${src} onto itself (${target} is the same ${st.isDirectory() ? 'directory' : 'file'})`,
      target,
    );
  }
  if (targetStats !== undefined && st.isSymbolicLink() && (await isSameFile(src, st, true, targetStats))) {
    throw sameFileError(verb, src, target, true);
  }
  if (!st.isDirectory()) return;
  const realSrc = await realpath(src);
  const realTarget = join(await realpath(dirname(target)), basename(target));
  if (realTarget === realSrc) throw invalid(`cannot ${verb} ${src} onto itself`, target);
  if (isInside(realTarget, realSrc)) {
    throw invalid(`cannot ${verb} directory ${src} into itself (${target})`, target);
  }
}

function jobFor(
  src: string,
  dest: string,
  kind: 'file' | 'symlink',
  st: { size?: number | undefined; mode?: number | undefined; mtimeMs?: number | undefined },
  noReplace: boolean,
  root: { crossDevice: boolean },
): Job {
  return {
    kind,
    src,
    dest,
    size: kind === 'file' ? (st.size ?? 0) : 0,
    mode: st.mode ?? 0o644,
    mtimeMs: st.mtimeMs ?? Date.now(),
    noReplace,
    root,
  };
}

/**
 * Decides what to do with a file whose destination may exist. Returns the job, or undefined when it is skipped
 * (counted) or failed (reported).
 */
function decide(
  planner: Planner,
  src: string,
  dest: string,
  kind: 'file' | 'symlink',
  st: { size?: number | undefined; mode?: number | undefined; mtimeMs?: number | undefined },
  existing: Stats | undefined,
  parentExisted: boolean,
  root: { crossDevice: boolean },
  sameFile = false,
): Job | undefined {
  const { overwrite } = planner.options;
  if (existing === undefined) {
    return jobFor(
      src,
      dest,
      kind,
      st,
      parentExisted && (overwrite === 'error' || overwrite === 'skip'),
      root,
    );
  }
  if (overwrite === 'skip') {
    planner.plan.skipped++;
    return undefined;
  }
  if (existing.isDirectory()) {
    planner.report(
      new CopyError('E_IS_DIR', `cannot ${planner.verb} ${src}: destination ${dest} is a directory`, {
        path: dest,
      }),
    );
    return undefined;
  }
  if (overwrite === 'error') {
    planner.report(
      new CopyError('E_EXISTS', `cannot ${planner.verb} ${src}: destination ${dest} already exists`, {
        path: dest,
      }),
    );
    return undefined;
  }
  if (sameFile) {
    planner.report(sameFileError(planner.verb, src, dest, kind === 'symlink'));
    return undefined;
  }
  if (overwrite === 'newer' && !((st.mtimeMs ?? 0) > existing.mtimeMs + MTIME_EPSILON_MS)) {
    planner.plan.skipped++;
    return undefined;
  }
  return jobFor(src, dest, kind, st, false, root);
}

function kindOfStats(st: Stats): 'file' | 'dir' | 'symlink' | 'other' {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

function notFile(verb: string, path: string): CopyError {
  return new CopyError(
    'E_NOT_FILE',
    `cannot ${verb} ${path}: not a regular file, directory or symlink (FIFO, socket or device)`,
    { path },
  );
}

async function planRoot(
  planner: Planner,
  src: string,
  st: Stats,
  target: string,
  targetStats: Stats | undefined,
): Promise<void> {
  const { options, verb, plan } = planner;
  const kind = kindOfStats(st);
  if (kind === 'other') {
    planner.report(notFile(verb, src));
    return;
  }
  const base = {
    src,
    target,
    kind,
    crossDevice: false,
    done: false,
    deferred: [] as CopyError[],
    jobs: [] as Job[],
    dirs: [] as DirJob[],
  };
  if (kind !== 'dir') {
    const root: Root = { ...base, targetExisted: targetStats !== undefined, renameWhole: false };
    const job = decide(planner, src, target, kind, st, targetStats, true, root);
    if (job !== undefined) root.jobs.push(job);
    plan.roots.push(root);
    return;
  }
  if (targetStats !== undefined && !targetStats.isDirectory()) {
    planner.report(
      new CopyError(
        'E_NOT_DIR',
        `cannot ${verb} directory ${src}: destination ${target} is not a directory`,
        {
          path: target,
        },
      ),
    );
    return;
  }
  const targetExisted = targetStats !== undefined;
  const root: Root = {
    ...base,
    targetExisted,
    renameWhole: verb === 'move' && !targetExisted && !options.filtered && !options.follow,
  };
  plan.roots.push(root);
  root.dirs.push({ src, dest: target, depth: 0, existed: targetExisted, mode: st.mode, mtimeMs: st.mtimeMs });
  // Below a root that may be renamed whole, per-entry failures wait for the outcome of that rename.
  const below: Planner = root.renameWhole
    ? { ...planner, report: (error) => void root.deferred.push(error) }
    : planner;

  let walkFailure: CopyError | undefined;
  const entries = await walkAll(src, {
    ...options.filter,
    stat: true,
    // One blocking lstat per entry in batches, as `find` does, rather than a thread-pool round trip each: the copy
    // that follows blocks in slices the same way.
    syncStat: true,
    followSymlinks: options.follow,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    onError: (error: WalkError) => {
      const copyError = new CopyError(error.code, error.message, {
        ...(error.path !== undefined ? { path: error.path } : {}),
        cause: error,
      });
      if (root.renameWhole) {
        root.deferred.push(copyError);
        return 'skip';
      }
      if (options.onError(copyError) === 'skip') {
        plan.errors++;
        return 'skip';
      }
      walkFailure = copyError;
      return 'throw';
    },
  }).catch((error: unknown) => {
    if (walkFailure !== undefined) throw walkFailure;
    if (WalkError.is(error)) {
      throw new CopyError(error.code, error.message, {
        ...(error.path !== undefined ? { path: error.path } : {}),
        cause: error,
      });
    }
    throw error;
  });

  // Depth by depth, so that a directory's state (existed before? failed?) is known before its children's.
  const byDepth: WalkEntry[][] = [];
  for (const e of entries) {
    const level = byDepth[e.depth];
    if (level === undefined) byDepth[e.depth] = [e];
    else level.push(e);
  }

  interface DirState {
    readonly existed: boolean;
    readonly failed: boolean;
  }
  const states = new Map<string, DirState | Promise<DirState>>([
    ['', { existed: targetExisted, failed: false }],
  ]);
  const limit = pLimit(options.concurrency * 4);

  const dirState = async (rel: string, entry: WalkEntry | undefined): Promise<DirState> => {
    const parent = await parentState(rel);
    const dest = join(target, rel);
    if (parent.failed) return parent;
    let existed = false;
    if (parent.existed) {
      const existing = await lstatOrUndefined(dest);
      if (existing !== undefined) {
        if (!existing.isDirectory()) {
          below.report(
            new CopyError(
              'E_NOT_DIR',
              `cannot ${verb} directory ${join(src, rel)}: destination ${dest} is not a directory`,
              { path: dest },
            ),
          );
          return { existed: false, failed: true };
        }
        existed = true;
      }
    }
    // A directory the filter left out but which holds wanted files: created with the source's metadata.
    const meta = entry ?? (await stat(join(src, rel)));
    root.dirs.push({
      src: join(src, rel),
      dest,
      depth: rel.split('/').length,
      existed,
      mode: meta.mode ?? 0o755,
      mtimeMs: meta.mtimeMs ?? Date.now(),
    });
    return { existed, failed: false };
  };

  const parentState = (rel: string): DirState | Promise<DirState> => {
    const at = rel.lastIndexOf('/');
    const parentRel = at < 0 ? '' : rel.slice(0, at);
    let state = states.get(parentRel);
    if (state === undefined) {
      const pending = dirState(parentRel, undefined);
      states.set(parentRel, pending);
      void pending.then((resolved) => states.set(parentRel, resolved)).catch(() => {});
      state = pending;
    }
    return state;
  };

  const planEntry = async (e: WalkEntry): Promise<void> => {
    if (e.type === 'dir') {
      const state = dirState(e.relativePath, e);
      states.set(e.relativePath, state);
      // Resolved, so that the files below take the synchronous path.
      states.set(e.relativePath, await state);
      return;
    }
    if (e.type === 'other') {
      below.report(notFile(verb, e.path));
      return;
    }
    const parent = await parentState(e.relativePath);
    if (parent.failed) return;
    const dest = join(target, e.relativePath);
    const existing = parent.existed ? await lstatOrUndefined(dest) : undefined;
    // Only a policy that replaces needs to know: 'skip' and 'error' never touch an existing destination.
    const replaces =
      existing !== undefined && (options.overwrite === 'overwrite' || options.overwrite === 'newer');
    const same = replaces && (await isSameFile(e.path, e, e.type === 'symlink', existing));
    const job = decide(below, e.path, dest, e.type, e, existing, parent.existed, root, same);
    if (job !== undefined) root.jobs.push(job);
  };

  const targetPrefix = target.endsWith(sep) ? target : target + sep;
  for (const level of byDepth) {
    if (level === undefined) continue;
    options.signal?.throwIfAborted();
    const slow: WalkEntry[] = [];
    for (const e of level) {
      // The common case, a file in a directory this run creates: nothing to look up, decided synchronously.
      if (e.type !== 'file' && e.type !== 'symlink') {
        slow.push(e);
        continue;
      }
      const at = e.relativePath.lastIndexOf('/');
      const parent = states.get(at < 0 ? '' : e.relativePath.slice(0, at));
      if (parent === undefined || parent instanceof Promise || parent.existed || parent.failed) {
        slow.push(e);
        continue;
      }
      // Concatenation, not join(): walk's relative paths are already normal, and join() costs on 200,000 files.
      const job = decide(below, e.path, targetPrefix + e.relativePath, e.type, e, undefined, false, root);
      if (job !== undefined) root.jobs.push(job);
    }
    await Promise.all(slow.map((e) => limit(() => planEntry(e))));
  }
  root.dirs.sort((a, b) => a.depth - b.depth);
}
