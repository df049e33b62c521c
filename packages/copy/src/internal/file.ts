import { accessSync, closeSync, constants, lstatSync, openSync, statSync } from 'node:fs';
import { chmod, copyFile, open, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CopyError, fromErrno } from '@fsw/errors';
import type { Resolved } from './options.js';
import type { Tracker } from './progress.js';
import {
  cloneError,
  errnoOf,
  NO_CLONE,
  removeQuietly,
  type SmallJob,
  tempPath as tempPathOf,
} from './sync-file.js';

export { errnoOf };

/**
 * One file or symlink to copy or move. `noReplace` (place with `link()`, which fails if the destination appeared
 * meanwhile, rather than `rename()`) is set when the destination directory existed before and the policy must not
 * replace files.
 */
export interface Job extends SmallJob {
  /** The root this job belongs to: shares what was learnt about crossing devices. */
  readonly root: { crossDevice: boolean };
}

/** What the per-file engine needs from the run. */
export interface Engine {
  readonly options: Resolved;
  readonly tracker: Tracker;
  /** Aborted when the run stops (user abort or a fatal error): in-flight copies stop at the next chunk. */
  readonly stop: AbortSignal;
  readonly umask: number;
  /** Makes unique temp names. */
  next: number;
  readonly token: string;
}

/**
 * Files at least this large are copied one by one through the thread pool, reporting progress within the file;
 * smaller ones with blocking calls in slices and worker threads.
 */
export const STREAM_THRESHOLD = 8 * 1024 * 1024;

/** Errors that concern the destination rather than the source. */
const DEST_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EFBIG', 'EEXIST', 'EISDIR', 'ENOTDIR']);
/** Errors of a call on both paths (copyfile, rename, link) that may concern either side: probed to tell. */
const EITHER_SIDE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT']);

/** The fields of a Node.js system error that tell which call failed on which path. */
interface CallError {
  readonly syscall?: unknown;
  readonly path?: unknown;
}

/** True when `fn` throws: a probe of the side a failed call concerns, made only after a failure. */
function fails(fn: () => void): boolean {
  try {
    fn();
    return false;
  } catch {
    return true;
  }
}

/**
 * Which side a failed system call concerns, from the call and its path: a call on the source alone (lstat,
 * readlink, open for reading) concerns the source; one on the temp file or the destination (open to create, write,
 * utimes, chmod, rename or link of the temp file) the destination. A copyfile, rename or link of the source itself
 * names both paths: EACCES, EPERM or EROFS may come from either (an unreadable source, or an unwritable destination
 * folder), so the source is probed — opened for reading for a copy, its folder checked for writing for a rename.
 */
function failedSide(error: unknown, job: Pick<Job, 'src' | 'dest'>): 'source' | 'destination' {
  const errno = errnoOf(error);
  const { syscall, path } = (typeof error === 'object' && error !== null ? error : {}) as CallError;
  if (typeof path !== 'string' || typeof syscall !== 'string') {
    return errno !== undefined && DEST_ERRNOS.has(errno) ? 'destination' : 'source';
  }
  if (path !== job.src) return 'destination';
  if (syscall === 'copyfile') {
    if (errno !== undefined && DEST_ERRNOS.has(errno)) return 'destination';
    return fails(() => closeSync(openSync(job.src, 'r'))) ? 'source' : 'destination';
  }
  if ((syscall === 'rename' || syscall === 'link') && errno !== undefined && EITHER_SIDE.has(errno)) {
    // Renaming a directory to another folder also rewrites its `..`: it must be writable itself.
    let directory = false;
    fails(() => {
      directory = lstatSync(job.src).isDirectory();
    });
    const sourceFails =
      fails(() => accessSync(dirname(job.src), constants.W_OK)) ||
      (directory && fails(() => accessSync(job.src, constants.W_OK)));
    return sourceFails ? 'source' : 'destination';
  }
  return 'source';
}

/**
 * Maps a failure of copying `job` to a CopyError naming the side it concerns, told by the call that failed (see
 * {@link failedSide}): `cannot copy SRC to DEST: ...` with `path` DEST for the destination, `cannot copy SRC: ...`
 * with `path` SRC for the source. A move whose source cannot be removed once its copy is in place gives
 * `copied to DEST, but cannot remove the source SRC: ...` with `path` SRC.
 */
export function copyFailure(error: unknown, job: Pick<Job, 'src' | 'dest'>, verb = 'copy'): CopyError {
  if (CopyError.is(error)) return error;
  const { syscall, path } = (typeof error === 'object' && error !== null ? error : {}) as CallError;
  if (syscall === 'unlink' && path === job.src) {
    // A move unlinks its source only once the copy is complete and in place: the file is now in both places.
    const cause = fromErrno(error, { path: job.src, family: CopyError, action: 'remove the source' });
    return new CopyError(
      cause.code,
      `copied to ${job.dest}, but ${cause.message}; the file is now in both places`,
      {
        path: job.src,
        cause: error,
      },
    );
  }
  if (failedSide(error, job) === 'destination') {
    return fromErrno(error, { path: job.dest, family: CopyError, action: `${verb} ${job.src} to` });
  }
  return fromErrno(error, { path: job.src, family: CopyError, action: verb });
}

/** A temp name next to `dest`: hidden, short (never longer than NAME_MAX whatever `dest` is), unique in this run. */
export function tempPath(engine: Engine, dest: string): string {
  return tempPathOf(dest, engine.token, engine.next++);
}

function throwIfStopped(engine: Engine): void {
  if (engine.stop.aborted) throw engine.stop.reason;
}

/**
 * Copies a large file to a temp name in its destination folder, with mode and times applied (and fsynced when asked).
 * On any failure or stop the temp file is removed and the error thrown. Progress bytes are reported as they are
 * written and taken back if the file fails. Returns the temp path and the bytes written.
 */
export async function copyToTemp(engine: Engine, job: Job): Promise<{ tmp: string; bytes: number }> {
  throwIfStopped(engine);
  const tmp = tempPath(engine, job.dest);
  let reported = 0;
  try {
    const bytes = await copyBytes(engine, job, tmp, (n) => {
      reported += n;
      engine.tracker.addBytes(n, job.dest);
    });
    if (reported !== bytes) {
      engine.tracker.addBytes(bytes - reported, job.dest);
      reported = bytes;
    }
    throwIfStopped(engine);
    return { tmp, bytes };
  } catch (error) {
    if (reported !== 0) engine.tracker.addBytes(-reported, job.dest);
    removeQuietly(tmp);
    throw error;
  }
}

async function copyBytes(
  engine: Engine,
  job: Job,
  tmp: string,
  onBytes: (n: number) => void,
): Promise<number> {
  const { reflink, preserveMode, preserveTimes, fsync } = engine.options;
  const flag =
    reflink === 'always'
      ? constants.COPYFILE_FICLONE_FORCE
      : reflink === 'auto'
        ? constants.COPYFILE_FICLONE
        : 0;
  // One libuv request: a clone where allowed and possible, else copy_file_range in the kernel (as cp does), with no
  // copy through user space. It cannot be observed or interrupted, so progress within the file comes from the size
  // of the temp file, polled.
  const poll = engine.options.onProgress === undefined ? undefined : pollSize(tmp, onBytes, engine.options);
  try {
    await copyFile(job.src, tmp, constants.COPYFILE_EXCL | flag);
  } catch (error) {
    if (reflink === 'always' && NO_CLONE.has(errnoOf(error) ?? '')) throw cloneError(error, job);
    throw error;
  } finally {
    poll?.();
  }
  // copyFile gives the copy the source's full mode; without preserve it gets what a new file would (often the same
  // bits: then no chmod).
  if (!preserveMode) {
    const wanted = job.mode & 0o777 & ~engine.umask;
    if (wanted !== (job.mode & 0o7777)) await chmod(tmp, wanted);
  }
  if (preserveTimes) await utimes(tmp, Date.now() / 1000, job.mtimeMs / 1000);
  if (fsync) await syncPath(tmp);
  // copyFile copies to the end of the source as it finds it; the plan's size is what progress counts, and a move
  // checks the real size of the copy before it removes anything.
  return job.size;
}

/**
 * Reports the growth of `tmp` while a copyFile writes it: soon after the copy starts, then every progress interval
 * (no more often than every 2 ms: a kernel copy of tens of MiB can end within 10 ms). Returns the function that stops
 * it.
 */
function pollSize(tmp: string, onBytes: (n: number) => void, options: Resolved): () => void {
  let seen = 0;
  const check = () => {
    let size: number;
    try {
      size = statSync(tmp).size;
    } catch {
      return;
    }
    if (size > seen) {
      onBytes(size - seen);
      seen = size;
    }
  };
  const timer = setInterval(check, Math.max(2, options.progressIntervalMs));
  const first = setTimeout(check, 1);
  return () => {
    clearInterval(timer);
    clearTimeout(first);
  };
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory so that the renames into it survive a power loss. */
export async function syncDir(path: string): Promise<void> {
  try {
    await syncPath(path);
  } catch (error) {
    // Some filesystems refuse fsync on a directory: their renames are as durable as they get.
    if (errnoOf(error) !== 'EINVAL' && errnoOf(error) !== 'EISDIR') throw error;
  }
}
