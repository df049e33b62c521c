import type { CopyError } from '@fsw/errors';
import type { WalkOptions } from '@fsw/walk';

/**
 * What happens when a file's destination already exists:
 * - `'error'`: refuse with `CopyError` `E_EXISTS` naming the destination; nothing is written for that file.
 * - `'skip'`: leave the destination alone and count the file in `skipped`.
 * - `'overwrite'`: replace the destination (atomically, by rename).
 * - `'newer'`: replace it only when the source's mtime is later, else skip (like `cp --update`).
 */
export type OverwritePolicy = 'error' | 'skip' | 'overwrite' | 'newer';

/**
 * Copy-on-write cloning (`FICLONE`: btrfs, XFS, bcachefs, APFS...):
 * - `'auto'`: clone where the filesystem can, else copy the bytes.
 * - `'always'`: clone or fail with `CopyError` (`E_IO`, or `E_CROSS_DEVICE` across filesystems).
 * - `'never'`: always copy the bytes.
 */
export type ReflinkMode = 'auto' | 'always' | 'never';

/** Which metadata the copies keep. */
export interface PreserveOptions {
  /** Keep permission bits (else the source's mode masked by the umask, like `cp` without `-p`). @default true */
  readonly mode?: boolean;
  /** Keep modification times (access times are set to the time of the copy). @default true */
  readonly times?: boolean;
}

/** The filters of `@fsw/walk` that choose what a directory source contributes. */
export type CopyFilter = Pick<WalkOptions, 'glob' | 'ignore' | 'ignoreFiles' | 'hidden' | 'maxDepth'>;

/** A snapshot of a copy or move under way, handed to `onProgress`. */
export interface CopyProgress {
  /** Bytes written so far, including the part of a large file copied so far. */
  readonly bytesCopied: number;
  /** Bytes of every file that will be copied (skipped files excluded); known before the first byte is copied. */
  readonly totalBytes: number;
  /** Files and symlinks completed so far. */
  readonly filesCompleted: number;
  /** Files and symlinks that will be copied. */
  readonly totalFiles: number;
  /** The destination being written most recently, if any. */
  readonly currentFile?: string;
}

/** Options of {@link copy} and {@link move}. Every field is optional. */
export interface CopyOptions {
  /** What to do with a file whose destination exists. @default 'error' */
  readonly overwrite?: OverwritePolicy;
  /** Metadata kept; `false` keeps none, `true` all. @default { mode: true, times: true } */
  readonly preserve?: boolean | PreserveOptions;
  /** `'preserve'` copies a symlink as a symlink; `'follow'` copies what it points to. @default 'preserve' */
  readonly symlinks?: 'preserve' | 'follow';
  /** Copy-on-write cloning. @default 'auto' */
  readonly reflink?: ReflinkMode;
  /** Which entries of a directory source are copied (glob, ignore, ignoreFiles, hidden, maxDepth of `@fsw/walk`). @default everything */
  readonly filter?: CopyFilter;
  /**
   * Parallel copies at most: large files copied at once, and threads copying small files (the main thread plus
   * worker threads, one per core, started only on runs of thousands of files or many megabytes). @default 8
   */
  readonly concurrency?: number;
  /** Plan only: check sources, destinations and conflicts, and report what would be done, writing nothing. @default false */
  readonly dryRun?: boolean;
  /**
   * `fsync` every file before it is renamed into place, and every directory written to at the end: the copy then
   * survives a power loss, at a large cost in speed. Without it the copy is still atomic per file against crashes
   * of the process (temp name + rename), as with `cp` and `rsync`. @default false
   */
  readonly fsync?: boolean;
  /**
   * `move` across filesystems: how a copy is checked before its source is removed. `'size'` compares the size of
   * the copy with the source and checks that the source's size and mtime did not change during the copy;
   * `'content'` also compares every byte (reads both files again). @default 'size'
   */
  readonly verify?: 'size' | 'content';
  /** Cancels the work: in-flight files are finished or removed, never left truncated; throws `signal.reason`. */
  readonly signal?: AbortSignal;
  /** Called (synchronously, never awaited) at most every `progressIntervalMs`, and always once at the end. */
  readonly onProgress?: (progress: CopyProgress) => void;
  /** Minimum time between two `onProgress` calls. @default 100 */
  readonly progressIntervalMs?: number;
  /**
   * Decides what a failure of one entry does: `'skip'` counts it in `errors` and goes on; `'throw'` stops the work
   * (files in flight finish or are removed) and rejects. `E_NO_SPACE` always stops. @default () => 'throw'
   */
  readonly onError?: (error: CopyError) => 'skip' | 'throw';
}

/** What {@link copy} and {@link move} did (or, with `dryRun`, would do). */
export interface CopyResult {
  /** Files and symlinks copied (or moved). */
  readonly files: number;
  /** Bytes of the files copied (or moved). */
  readonly bytes: number;
  /** Directories created. */
  readonly dirs: number;
  /** Files left alone by the overwrite policy (`'skip'`, `'newer'`). */
  readonly skipped: number;
  /** Failures that `onError` answered with `'skip'`. */
  readonly errors: number;
}

/** A `CopyError` that stopped a copy or move part-way: `completed` tells what was done before it. */
export interface IncompleteCopyError extends CopyError {
  /** The work finished before the failure: those files are complete at their destinations. */
  readonly completed: CopyResult;
}
