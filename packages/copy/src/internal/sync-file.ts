import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  fsyncSync,
  linkSync,
  lstatSync,
  lutimesSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
} from 'node:fs';
import { sep } from 'node:path';
import { CopyError } from '@fsw/errors';

/**
 * One small file or symlink as the synchronous engine sees it: plain data, so that it can be posted to a worker
 * thread as it is.
 */
export interface SmallJob {
  readonly kind: 'file' | 'symlink';
  readonly src: string;
  readonly dest: string;
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
  /** Place with `link()` + `unlink()` (never replaces) rather than `rename()`. */
  readonly noReplace: boolean;
}

/** The options of the synchronous engine: plain data, shared by the main thread and the worker threads. */
export interface SyncConfig {
  readonly move: boolean;
  readonly overwrite: 'error' | 'skip' | 'overwrite' | 'newer';
  readonly preserveMode: boolean;
  readonly preserveTimes: boolean;
  readonly reflink: 'auto' | 'always' | 'never';
  readonly fsync: boolean;
  readonly verifyContent: boolean;
  readonly umask: number;
  /** Unique per run and per thread: temp names never collide between threads. */
  readonly token: string;
}

/** A temp name next to `dest`: hidden, short (never longer than NAME_MAX whatever `dest` is), unique per token. */
export function tempPath(dest: string, token: string, n: number): string {
  // dest is absolute and normal (resolved by the plan): slicing at the last separator is dirname() without its cost.
  const at = dest.lastIndexOf(sep);
  return `${at <= 0 ? sep : dest.slice(0, at + 1)}.fsw-${token}-${n.toString(36)}.tmp`;
}

/** What happened to one job. */
export const PLACED = 1;
/** The destination appeared since the plan and the policy keeps it (skip / newer): nothing written. */
export const KEPT = 0;

/** Errors of FICLONE meaning "this filesystem (pair) cannot clone", not a failure of the file. */
export const NO_CLONE = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOTTY', 'ENOSYS', 'EBADF']);
/** Errors of link() meaning "this filesystem cannot hard-link": fall back to rename. */
export const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

/** The errno name of a Node.js system error. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The failure of `reflink: 'always'` where no clone can be made. */
export function cloneError(error: unknown, job: Pick<SmallJob, 'src' | 'dest'>): CopyError {
  const errno = errnoOf(error) ?? 'ENOTSUP';
  const code = errno === 'EXDEV' ? 'E_CROSS_DEVICE' : 'E_IO';
  const why =
    errno === 'EXDEV'
      ? 'source and destination are on different filesystems'
      : 'the filesystem does not support reflinks';
  return new CopyError(
    code,
    `cannot clone ${job.src} to ${job.dest} (reflink: 'always'): ${why} (${errno})`,
    {
      path: job.dest,
      cause: error,
    },
  );
}

/** The E_EXISTS of a destination that appeared since the plan under `overwrite: 'error'`. */
export function existsError(job: Pick<SmallJob, 'dest'>): CopyError {
  return new CopyError('E_EXISTS', `destination ${job.dest} already exists`, { path: job.dest });
}

/**
 * E_CHANGED: a cross-device move whose source changed while it was copied (the source is kept).
 */
export function changedError(job: Pick<SmallJob, 'src'>, why: string): CopyError {
  return new CopyError('E_CHANGED', `cannot move ${job.src}: ${why}; the source was kept`, { path: job.src });
}

/**
 * Copies and moves small files with blocking system calls: on this kind of work a thread-pool round trip per call
 * costs several times the call itself, so a run of these is made in slices of the main thread or in a worker
 * thread. Each file still goes through a temp name in its destination folder, renamed into place when complete.
 */
export class SyncCopier {
  private next = 0;
  /** Learnt on the first EXDEV of a same-device rename: later moves go straight to copy + remove. */
  crossDevice = false;
  private readonly config: SyncConfig;
  private readonly copyFlags: number;

  constructor(config: SyncConfig) {
    this.config = config;
    this.copyFlags =
      constants.COPYFILE_EXCL |
      (config.reflink === 'always'
        ? constants.COPYFILE_FICLONE_FORCE
        : config.reflink === 'auto'
          ? constants.COPYFILE_FICLONE
          : 0);
  }

  /**
   * Copies (or moves) one job. Returns {@link PLACED}, or {@link KEPT} when the destination appeared since the plan
   * and the policy keeps it. On any failure no temp file is left and nothing is under the final name that was not
   * there before; for a move the source is removed only once its copy is in place.
   * @throws the system error (mapped by the caller), or a CopyError (`E_EXISTS`, `E_CHANGED`, reflink failures)
   */
  run(job: SmallJob): number {
    if (this.config.move && !this.crossDevice) {
      try {
        if (place(job.src, job)) return PLACED;
        if (this.config.overwrite === 'error') throw existsError(job);
        return KEPT;
      } catch (error) {
        if (errnoOf(error) !== 'EXDEV') throw error;
        this.crossDevice = true;
      }
    }
    const tmp = tempPath(job.dest, this.config.token, this.next++);
    let placed = false;
    try {
      this.copyToTemp(job, tmp);
      if (this.config.move) this.verify(job, tmp);
      placed = place(tmp, job);
    } finally {
      if (!placed) removeQuietly(tmp);
    }
    if (!placed) {
      if (this.config.overwrite === 'error') throw existsError(job);
      return KEPT;
    }
    // The copy is complete and in place: only now may the source go.
    if (this.config.move) unlinkSync(job.src);
    return PLACED;
  }

  private copyToTemp(job: SmallJob, tmp: string): void {
    const { preserveMode, preserveTimes, fsync, reflink } = this.config;
    if (job.kind === 'symlink') {
      symlinkSync(readlinkSync(job.src), tmp);
      if (preserveTimes) lutimesSync(tmp, Date.now() / 1000, job.mtimeMs / 1000);
      return;
    }
    try {
      copyFileSync(job.src, tmp, this.copyFlags);
    } catch (error) {
      if (reflink === 'always' && NO_CLONE.has(errnoOf(error) ?? '')) throw cloneError(error, job);
      throw error;
    }
    // copyFile gives the copy the source's full mode; without preserve it gets what a new file would (often the
    // same bits: then no chmod).
    if (!preserveMode) {
      const wanted = job.mode & 0o777 & ~this.config.umask;
      if (wanted !== (job.mode & 0o7777)) chmodSync(tmp, wanted);
    }
    if (preserveTimes) utimesSync(tmp, Date.now() / 1000, job.mtimeMs / 1000);
    if (fsync) {
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }

  /** See `verify` in run.ts: the same checks, made with blocking calls on a small file. */
  private verify(job: SmallJob, tmp: string): void {
    const now = lstatSync(job.src);
    if (job.kind === 'symlink') {
      if (readlinkSync(job.src) !== readlinkSync(tmp)) {
        throw changedError(job, 'the symlink changed while it was copied');
      }
      return;
    }
    if (now.size !== job.size || now.mtimeMs !== job.mtimeMs)
      throw changedError(job, 'it changed while it was copied');
    const copied = lstatSync(tmp);
    if (copied.size !== job.size)
      throw changedError(job, `the copy has ${copied.size} bytes, the source ${job.size}`);
    if (this.config.verifyContent && !readFileSync(job.src).equals(readFileSync(tmp))) {
      throw changedError(job, 'the copy differs from the source');
    }
  }
}

/**
 * Moves `from` (a complete temp file, or the source itself for a same-device move) to `job.dest`. With
 * `noReplace` it uses `link()` + `unlink()`, which fails with EEXIST instead of replacing a file that appeared since
 * the plan. Returns false when the destination exists (the caller decides between skip and E_EXISTS); `from` is
 * then left in place.
 */
export function place(from: string, job: Pick<SmallJob, 'dest' | 'noReplace'>): boolean {
  if (job.noReplace) {
    try {
      linkSync(from, job.dest);
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === 'EEXIST') return false;
      if (errno === undefined || !NO_LINK.has(errno)) throw error;
      renameSync(from, job.dest);
      return true;
    }
    unlinkSync(from);
    return true;
  }
  renameSync(from, job.dest);
  return true;
}

/**
 * Checks a cross-device copy of a file before its source is removed: the copy has the source's size, and the source
 * did not change (size, mtime) while it was copied.
 * @throws CopyError `E_CHANGED`
 */
export function checkCopy(job: Pick<SmallJob, 'src' | 'size' | 'mtimeMs'>, tmp: string): void {
  const now = lstatSync(job.src);
  if (now.size !== job.size || now.mtimeMs !== job.mtimeMs)
    throw changedError(job, 'it changed while it was copied');
  const copied = lstatSync(tmp);
  if (copied.size !== job.size)
    throw changedError(job, `the copy has ${copied.size} bytes, the source ${job.size}`);
}

/** Removes a temp file that could not be placed, if it exists. */
export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created, or copyFile removed its own partial output on failure: nothing left.
  }
}
