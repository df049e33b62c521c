import type { WalkError } from '@fsw/errors';

/** What a walked entry is. Symlinks are reported as `'symlink'` unless `followSymlinks` resolves them. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** One file, directory, symlink or other node found by a walk. The one description of a file that dedup, tree and copy consume. */
export interface WalkEntry {
  /** The root joined with `relativePath`, as `find` prints it. */
  readonly path: string;
  /** The path below the root, `/`-separated. */
  readonly relativePath: string;
  /** The base name. */
  readonly name: string;
  /** Children of the root are depth 1; the root itself is never yielded (unless the root is a file). */
  readonly depth: number;
  readonly type: EntryType;
  /** With `stat: true`. */
  readonly size?: number;
  readonly mtimeMs?: number;
  readonly mode?: number;
  readonly ino?: number;
  readonly dev?: number;
  readonly nlink?: number;
  /**
   * The exact bytes of `path`, set only when some component of it is not valid UTF-8 (Linux allows any bytes but
   * `/` and NUL in a name). `path`, `relativePath` and `name` then hold a lossy decoding (invalid bytes become
   * U+FFFD) fit for display and matching; pass `entry.rawPath ?? entry.path` to `node:fs` to reach the file.
   */
  readonly rawPath?: Buffer;
  /** The exact bytes of `relativePath`, set together with `rawPath`. */
  readonly rawRelativePath?: Buffer;
}

/** Running totals of a walk, handed to `onProgress`. */
export interface WalkProgress {
  /** Entries found so far (those that pass the filters). */
  readonly entries: number;
  /** Directories found to read so far, the root included. */
  readonly directories: number;
  /** Failures skipped so far (`onError` answered `'skip'`). */
  readonly skipped: number;
}

/** Options of `walk` and `walkAll`. Every field is optional. */
export interface WalkOptions {
  /** Which entries to yield. @default 'any' */
  readonly type?: 'file' | 'dir' | 'symlink' | 'any';
  /**
   * micromatch pattern(s) matched against `relativePath`; a pattern without a slash matches the base name. Filters
   * what is yielded, never what is walked. @default none
   */
  readonly glob?: string | readonly string[];
  /** gitignore-style patterns, relative to the root. Excluded directories are never read. @default none */
  readonly ignore?: string | readonly string[];
  /**
   * Ignore files honoured per directory, e.g. `['.gitignore']`; nested files apply to their subtree and override
   * shallower ones, negation included. @default []
   */
  readonly ignoreFiles?: readonly string[];
  /** Deepest depth yielded; deeper directories are never read. @default Infinity */
  readonly maxDepth?: number;
  /** Include dotfiles and dot-directories. @default true */
  readonly hidden?: boolean;
  /** Follow symlinks (loops detected by dev+ino and reported once). @default false */
  readonly followSymlinks?: boolean;
  /** Add size, mtimeMs, mode, ino, dev and nlink to each entry. @default false */
  readonly stat?: boolean;
  /**
   * With `stat` (and without `followSymlinks`): stat each entry with a synchronous call instead of a thread-pool
   * round trip, as `find` does. Several times cheaper per entry on a warm local disk, but each call blocks the event
   * loop (up to a batch of 1,024 entries at a time): for CLIs and scripts, not for servers or slow network disks.
   * @default false
   */
  readonly syncStat?: boolean;
  /**
   * Read each directory with a synchronous call (`readdirSync`) instead of a thread-pool round trip, giving the event
   * loop a turn every few milliseconds (so progress, messages and aborts are still handled). Several times cheaper per
   * directory on a warm local disk, for trees of many small directories; but each call blocks the event loop for as
   * long as that one directory takes to list: for CLIs and scripts, not for servers or slow network disks. Applies to
   * the unsorted `walk`; `sort` and `walkAll` read as before. Same entries and errors either way.
   * @default false
   */
  readonly syncReaddir?: boolean;
  /** Deterministic order: depth-first, siblings by name (UTF-16 code units). @default false */
  readonly sort?: boolean;
  /** Directories read at once. @default 8 */
  readonly concurrency?: number;
  /** Aborting it ends the walk at once with `signal.reason`. @default none */
  readonly signal?: AbortSignal;
  /**
   * Called with running totals while the walk goes on (at most every 100 ms, synchronously, never awaited) and once
   * at its end. @default none
   */
  readonly onProgress?: (progress: WalkProgress) => void;
  /**
   * Decides what a failure below the root does: `'skip'` counts it (`skipped`) and goes on, `'throw'` ends the walk
   * with it. Failures at the root always throw. @default () => 'throw'
   */
  readonly onError?: (error: WalkError) => 'skip' | 'throw';
}
