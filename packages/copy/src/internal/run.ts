import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmdirSync, utimesSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CopyError, fromErrno } from '@fsw/errors';
import type { CopyResult, IncompleteCopyError } from '../types.js';
import {
  copyFailure,
  copyToTemp,
  type Engine,
  errnoOf,
  type Job,
  STREAM_THRESHOLD,
  syncDir,
} from './file.js';
import type { Resolved } from './options.js';
import type { DirJob, Plan, Root } from './plan.js';
import { Tracker } from './progress.js';
import { sliced } from './slices.js';
import { runSmallJobs, type SmallLane } from './small.js';
import { changedError, checkCopy, existsError, place, removeQuietly } from './sync-file.js';

interface Counters {
  files: number;
  bytes: number;
  dirs: number;
  skipped: number;
  errors: number;
}

/** Runs `fn` over `items`, `concurrency` at a time, until done or `stop` aborts. */
async function pool<T>(
  items: readonly T[],
  concurrency: number,
  stop: AbortSignal,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop.aborted) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * The umask, read only when needed (`preserve.mode: false`). The reading form of `process.umask()` is deprecated
 * in the docs only; the alternative, setting and restoring it, races with files created meanwhile.
 */
function currentUmask(options: Resolved): number {
  return options.preserveMode ? 0 : process.umask();
}

/**
 * Carries out a plan: creates directories, copies (or moves) every job with bounded concurrency, applies
 * directory metadata deepest first, and for a move removes emptied source directories.
 * @throws CopyError a failure that `onError` answered with 'throw', or any `E_NO_SPACE`, carrying `completed`;
 *   `signal.reason` on abort.
 */
export async function execute(plan: Plan, options: Resolved, verb: 'copy' | 'move'): Promise<CopyResult> {
  const tracker = new Tracker(options.onProgress, options.progressIntervalMs);
  tracker.totalBytes = plan.totalBytes;
  tracker.totalFiles = plan.totalFiles;
  const counters: Counters = { files: 0, bytes: 0, dirs: 0, skipped: plan.skipped, errors: plan.errors };

  if (options.dryRun) {
    for (const root of plan.roots) counters.dirs += root.dirs.filter((d) => !d.existed).length;
    tracker.emit();
    return { ...counters, files: plan.totalFiles, bytes: plan.totalBytes };
  }

  const controller = new AbortController();
  const stop = controller.signal;
  let fatal: CopyError | undefined;
  const { signal } = options;
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();

  const engine: Engine = {
    options,
    tracker,
    stop,
    umask: currentUmask(options),
    next: 0,
    token: randomBytes(4).toString('hex'),
  };

  /** A per-entry failure: counted when onError skips it, else it stops the run. Never throws. */
  const fail = (error: unknown): void => {
    if (stop.aborted) return;
    const copyError = CopyError.is(error) ? error : fromErrno(error, { family: CopyError, action: verb });
    if (copyError.code !== 'E_NO_SPACE' && options.onError(copyError) === 'skip') {
      counters.errors++;
      return;
    }
    fatal = copyError;
    controller.abort(copyError);
  };

  const touched = new Set<string>();
  /** A job failed: E_EXISTS for a destination that appeared since the plan, else mapped to the side it concerns. */
  const failJob = (error: unknown, job: Job): void => {
    if (stop.aborted) return;
    fail(
      errnoOf(error) === 'EEXIST' && !CopyError.is(error)
        ? new CopyError('E_EXISTS', `cannot ${verb} ${job.src}: destination ${job.dest} already exists`, {
            path: job.dest,
            cause: error,
          })
        : copyFailure(error, job, verb),
    );
  };
  /** Counts a job that ended: placed, or kept because its destination appeared since the plan. */
  const counted = (job: Job, placed: boolean): void => {
    if (placed) {
      counters.files++;
      counters.bytes += job.size;
      if (options.fsync) touched.add(dirname(job.dest));
    } else {
      counters.skipped++;
      // A file that appeared since the plan: its bytes will never come.
      tracker.totalBytes -= job.size;
      tracker.totalFiles--;
    }
  };

  try {
    if (verb === 'move') {
      for (const root of plan.roots) {
        if (stop.aborted) break;
        if (!root.renameWhole) continue;
        try {
          await renameRoot(root, tracker, counters);
        } catch (error) {
          // As mv: a source that cannot be renamed (EBUSY for a mount point, EACCES...) is reported and stays
          // whole where it was; emptying it file by file would report a failure and move it anyway.
          root.done = true;
          fail(error);
          continue;
        }
        // Moving entry by entry after all: what only a whole rename could have taken along is reported now.
        if (!root.done) for (const error of root.deferred) fail(error);
      }
    }

    for (const root of plan.roots) {
      if (root.done || stop.aborted) continue;
      await makeDirs(root.dirs, stop, counters, fail);
    }

    const small: Job[] = [];
    const large: Job[] = [];
    for (const root of plan.roots) {
      if (root.done) continue;
      for (const job of root.jobs) (job.size < STREAM_THRESHOLD ? small : large).push(job);
    }
    const lane: SmallLane = {
      jobs: small,
      stop,
      maxWorkers: options.concurrency,
      config: {
        move: verb === 'move',
        overwrite: options.overwrite,
        preserveMode: options.preserveMode,
        preserveTimes: options.preserveTimes,
        reflink: options.reflink,
        fsync: options.fsync,
        verifyContent: options.verify === 'content',
        umask: engine.umask,
        token: engine.token,
      },
      counted,
      failed: failJob,
      abandon: (error) => {
        if (stop.aborted) return;
        fatal = new CopyError('E_IO', `cannot ${verb}: a copy worker thread stopped (${error.message})`, {
          cause: error,
        });
        controller.abort(fatal);
      },
      progress: (files, bytes, last) => tracker.addFiles(files, bytes, last),
    };
    // Large files go through the thread pool in chunks (progress within the file) while the small ones are copied
    // with blocking calls in between.
    await Promise.all([
      runSmallJobs(lane),
      pool(large, options.concurrency, stop, async (job) => {
        try {
          const done = verb === 'move' ? await moveJob(engine, job) : await copyJob(engine, job);
          counted(job, done);
          if (done) tracker.fileDone(job.dest);
        } catch (error) {
          failJob(error, job);
        }
      }),
    ]);

    if (!stop.aborted) {
      for (const root of plan.roots) {
        if (root.done) continue;
        await applyDirMetadata(root.dirs, options, stop, fail);
        if (options.fsync) for (const d of root.dirs) touched.add(d.dest);
      }
    }
    if (!stop.aborted && verb === 'move') {
      for (const root of plan.roots) if (!root.done) removeEmptied(root.dirs);
    }
    if (!stop.aborted && options.fsync) {
      for (const dir of touched) await syncDir(dir).catch(fail);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }

  const result: CopyResult = { ...counters };
  tracker.emit();
  if (fatal !== undefined) {
    const error = fatal as IncompleteCopyError;
    Object.defineProperty(error, 'completed', { value: result, enumerable: false, configurable: true });
    throw error;
  }
  if (stop.aborted) throw stop.reason;
  return result;
}

async function renameRoot(root: Root, tracker: Tracker, counters: Counters): Promise<void> {
  try {
    await rename(root.src, root.target);
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === 'EXDEV') root.crossDevice = true;
    // EXDEV, or a target that appeared since the plan: the entry-by-entry path handles both.
    if (errno === 'EXDEV' || errno === 'ENOTEMPTY' || errno === 'EEXIST') return;
    // EACCES or EROFS may come from the source's folder or the target's: copyFailure probes which.
    throw copyFailure(error, { src: root.src, dest: root.target }, 'move');
  }
  root.done = true;
  counters.dirs += root.dirs.length;
  for (const job of root.jobs) {
    counters.files++;
    counters.bytes += job.size;
    tracker.bytesCopied += job.size;
    tracker.filesCompleted++;
  }
  tracker.currentFile = root.target;
}

/** Creates the directories (sorted by depth: parents first) with blocking calls, in slices. */
async function makeDirs(
  dirs: readonly DirJob[],
  stop: AbortSignal,
  counters: Counters,
  fail: (error: unknown) => void,
): Promise<void> {
  let i = 0;
  await sliced(stop, () => {
    const dir = dirs[i++];
    if (dir === undefined) return false;
    if (dir.existed) return true;
    try {
      mkdirSync(dir.dest);
      counters.dirs++;
    } catch (error) {
      fail(fromErrno(error, { path: dir.dest, family: CopyError, action: 'create directory' }));
    }
    return true;
  });
}

/**
 * Gives the directories this run created their source's mode and mtime, deepest first; the first failure is handed
 * to `fail`. A directory that existed before is merged into, not copied: it keeps its mode (a 1777 /tmp stays 1777, as
 * with `cp -r`) and its mtime tells when it was last written to.
 */
async function applyDirMetadata(
  dirs: readonly DirJob[],
  options: Resolved,
  stop: AbortSignal,
  fail: (error: unknown) => void,
): Promise<void> {
  if (!options.preserveMode && !options.preserveTimes) return;
  // Deepest first: setting a child's times is not a write to the parent, but creating files in it was.
  let i = dirs.length - 1;
  await sliced(stop, () => {
    const dir = dirs[i--];
    if (dir === undefined) return false;
    if (dir.existed) return true;
    try {
      if (options.preserveMode) chmodSync(dir.dest, dir.mode & 0o7777);
      if (options.preserveTimes) utimesSync(dir.dest, Date.now() / 1000, dir.mtimeMs / 1000);
    } catch (error) {
      // A directory that failed to be created was already reported.
      if (errnoOf(error) === 'ENOENT') return true;
      fail(fromErrno(error, { path: dir.dest, family: CopyError, action: 'set metadata of' }));
      return false;
    }
    return true;
  });
}

/** After a move, removes the source directories that are now empty (deepest first); what remains stays. */
function removeEmptied(dirs: readonly DirJob[]): void {
  for (let i = dirs.length - 1; i >= 0; i--) {
    try {
      rmdirSync((dirs[i] as DirJob).src);
    } catch {
      // Not empty: it holds files skipped, failed or left out by the filter, which are not ours to remove.
    }
  }
}

async function copyJob(engine: Engine, job: Job): Promise<boolean> {
  const { tmp, bytes } = await copyToTemp(engine, job);
  return placeOrDiscard(engine, tmp, job, bytes);
}

/**
 * Renames a complete temp file into place. When the destination appeared since the plan, or on any failure, the
 * temp file is removed and its bytes taken back from the progress; E_EXISTS under `overwrite: 'error'`.
 */
function placeOrDiscard(engine: Engine, tmp: string, job: Job, bytes: number): boolean {
  let placed = false;
  try {
    if (engine.stop.aborted) throw engine.stop.reason;
    placed = place(tmp, job);
  } finally {
    if (!placed) {
      removeQuietly(tmp);
      engine.tracker.addBytes(-bytes, job.dest);
    }
  }
  if (!placed && engine.options.overwrite === 'error') throw existsError(job);
  return placed;
}

/** Moves one large file: by rename on one filesystem; else copy, verify, place, and only then remove the source. */
async function moveJob(engine: Engine, job: Job): Promise<boolean> {
  if (engine.stop.aborted) throw engine.stop.reason;
  if (!job.root.crossDevice) {
    try {
      if (!place(job.src, job)) {
        if (engine.options.overwrite === 'error') throw existsError(job);
        return false;
      }
      engine.tracker.addBytes(job.size, job.dest);
      return true;
    } catch (error) {
      if (errnoOf(error) !== 'EXDEV') throw error;
      job.root.crossDevice = true;
    }
  }
  const { tmp, bytes } = await copyToTemp(engine, job);
  try {
    checkCopy(job, tmp);
    if (engine.options.verify === 'content' && !(await sameContent(job.src, tmp, engine.stop))) {
      throw changedError(job, 'the copy differs from the source');
    }
  } catch (error) {
    engine.tracker.addBytes(-bytes, job.dest);
    removeQuietly(tmp);
    throw error;
  }
  if (!placeOrDiscard(engine, tmp, job, bytes)) return false;
  // The copy is complete and in place: only now may the source go.
  await unlink(job.src);
  return true;
}

async function sameContent(a: string, b: string, stop: AbortSignal): Promise<boolean> {
  const size = 1024 * 1024;
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const ba = Buffer.allocUnsafe(size);
    const bb = Buffer.allocUnsafe(size);
    for (let position = 0; ; position += size) {
      if (stop.aborted) throw stop.reason;
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size, position), fb.read(bb, 0, size, position)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}
