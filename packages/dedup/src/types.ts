import type { DedupError, DedupErrorCode, FswError } from '@fsw/errors';
import type { HashAlgorithm } from '@fsw/hash';

/** One distinct file (one inode) among the candidates, with every path that names it. */
export interface DedupFile {
  /** The first path (in sort order) that names this file; the one that is read. */
  readonly path: string;
  /**
   * The exact bytes of `path`, set only when some component of it is not valid UTF-8 (Linux allows any bytes but `/`
   * and NUL in a name): `path` is then a lossy decoding (invalid bytes become U+FFFD) fit for display, and this is
   * what is opened.
   */
  readonly rawPath?: Buffer;
  /** Every path naming this inode (hard links, sorted); includes `path`. */
  readonly paths: readonly string[];
  /** Set when some name in `paths` is not valid UTF-8: the exact bytes of each, in `paths` order (`undefined` for a
   * valid one). */
  readonly rawPaths?: readonly (Buffer | undefined)[];
  readonly size: number;
  /** Device id; `0` when the platform does not report one. */
  readonly dev: number;
  /** Inode number; `0` when the platform does not report one (each path is then its own file). */
  readonly ino: number;
  readonly mtimeMs: number;
}

/** A set of distinct files that every stage so far found equal. */
export interface CandidateGroup {
  /** At least two files, each a distinct inode. */
  readonly files: readonly DedupFile[];
  /**
   * What the stages so far proved the files share, set by the stage that split the group: `size:<n>` after the
   * size stage, the hex digest after a hash stage. Groups leaving the last stage report it as their `digest`.
   */
  readonly key: string;
}

/** Cached digests of files, keyed by dev, ino, size and mtime (a change of any of them is a miss). */
export interface DigestStore {
  /** The digest of `file` of the given kind (e.g. `full:blake3`), if known for its current size and mtime. */
  get(file: DedupFile, kind: string): string | undefined;
  /** Remembers a digest of `file` of the given kind. */
  set(file: DedupFile, kind: string, digest: string): void;
}

/** What a stage receives besides its group. */
export interface StageContext {
  readonly signal: AbortSignal | undefined;
  /** How many files a stage may read at once. */
  readonly concurrency: number;
  /** Digests already known (from earlier stages of this run or from the on-disk cache). */
  readonly digests: DigestStore;
  /** Adds to the bytes this stage has read, for progress. Cheap; call it as bytes are read. */
  addBytes(bytes: number): void;
  /**
   * Counts files a stage finished with in `prepare` (progress `done` is the larger of these and the files of the
   * groups refined so far). Cheap; optional for a stage that does its work in `refine`.
   */
  addDone(files: number): void;
  /**
   * Reports a file the stage could not read. With `onError` returning `'skip'` the stage must leave the file out of
   * its groups; otherwise this throws the error.
   */
  fail(error: DedupError | FswError): void;
}

/**
 * One step of the duplicate search: it receives a group of files that every earlier stage found equal and returns it
 * split into finer groups (files it cannot tell apart stay together). Groups of fewer than two files are dropped
 * after every stage. Stages see each group once; `prepare` (optional) sees all of a stage's groups first, so a
 * stage can read files in one large batch.
 */
export interface DedupStage {
  /** Shown in progress reports, e.g. `'size'`, `'partial'`, `'full'`, `'bytes'`. */
  readonly name: string;
  /** Runs once before the stage's `refine` calls, with every group that reaches the stage. */
  prepare?(groups: readonly CandidateGroup[], ctx: StageContext): void | Promise<void>;
  /** Splits one candidate group into finer groups. */
  refine(
    group: CandidateGroup,
    ctx: StageContext,
  ): readonly CandidateGroup[] | Promise<readonly CandidateGroup[]>;
}

/** Progress of one stage, throttled; a report with `done === total` ends each stage. */
export interface DedupProgress {
  /** The stage name (`'walk'` while the roots are being listed). */
  readonly stage: string;
  /** Files this stage has finished with. */
  readonly done: number;
  /** Files that entered this stage. */
  readonly total: number;
  /** Bytes this stage has read so far. */
  readonly bytes: number;
}

/** Files that are byte-for-byte equal. */
export interface DuplicateGroup {
  /** The full-content digest (hex) with the default stages; else the key the last splitting stage set. */
  readonly digest: string;
  /** The size of each file in bytes. */
  readonly size: number;
  /** Every path, hard links included, sorted. */
  readonly paths: readonly string[];
  /**
   * Set when some path of the group is not valid UTF-8: the exact bytes of each path, in `paths` order (`undefined`
   * for a valid one); `paths` then holds a lossy decoding of those (invalid bytes as U+FFFD), fit for display only.
   */
  readonly rawPaths?: readonly (Buffer | undefined)[];
  /** Bytes that deduplication would free: `size x (distinct files - 1)`; hard links count once. */
  readonly wastedBytes: number;
  /** The distinct files (inodes), each with its paths, in `paths` order of their first path. */
  readonly files: readonly DedupFile[];
}

/** The cache of digests: a file path, or `true` for {@link defaultCachePath}. */
export type DedupCacheOption = string | boolean;

/** Options of {@link groupDuplicates}: the pipeline over files you listed yourself. */
export interface GroupDuplicatesOptions {
  /** The stages to run, in order. @default defaultStages(options) */
  readonly stages?: readonly DedupStage[];
  /** Hash algorithm of the default full stage, whose digest names each group. @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
  /** Bytes of the head and of the tail hashed by the default partial stage. @default 4096 */
  readonly partialBytes?: number;
  /**
   * Hash of the default partial stage, a filter only (files it finds equal are then hashed whole with `algorithm`).
   * @default 'crc32'
   */
  readonly partialAlgorithm?: HashAlgorithm;
  /** End the default stages with a byte-for-byte comparison (`byteCompareStage`), as `jdupes` does. @default false */
  readonly paranoid?: boolean;
  /**
   * Groups refined at once; from 2 on, one helper thread hashes alongside the calling thread when there are
   * thousands of files or hundreds of MiB to hash. @default max(2, os.availableParallelism())
   */
  readonly concurrency?: number;
  /** Keep digests on disk so an unchanged file is never read twice: a path, or `true` for the default path. @default false */
  readonly cache?: DedupCacheOption;
  readonly signal?: AbortSignal;
  /** Called with each stage's progress, throttled; synchronous and never awaited. */
  readonly onProgress?: (progress: DedupProgress) => void;
  /** Decides what a file that cannot be listed or read does: `'skip'` leaves it out. @default () => 'throw' */
  readonly onError?: (error: FswError) => 'skip' | 'throw';
}

/** Options of {@link findDuplicates}. Every field is optional. */
export interface FindDuplicatesOptions extends GroupDuplicatesOptions {
  /** micromatch pattern(s) a file's path below its root must match. */
  readonly glob?: string | readonly string[];
  /** gitignore-style patterns, relative to each root. */
  readonly ignore?: string | readonly string[];
  /** Ignore files honoured per directory, e.g. `['.gitignore']`. */
  readonly ignoreFiles?: readonly string[];
  /** Include dotfiles and dot-directories. @default true */
  readonly hidden?: boolean;
  /** Deepest depth listed. @default Infinity */
  readonly maxDepth?: number;
  /** Follow symlinks; a link then counts as another name of its target, never as a copy. @default false */
  readonly followSymlinks?: boolean;
  /** Smallest file size considered; empty files are not duplicates. @default 1 */
  readonly minSize?: number;
  /** Largest file size considered. @default Infinity */
  readonly maxSize?: number;
}

/** What {@link scanDuplicates} found, with counts for a summary. */
export interface DuplicateScan {
  /** Sorted by `wastedBytes` descending (then by first path). */
  readonly groups: readonly DuplicateGroup[];
  /** Distinct files (inodes) considered after the size filters. */
  readonly files: number;
  /** Bytes read by all stages. */
  readonly bytesRead: number;
  /** Files or directories left out because `onError` said `'skip'`. */
  readonly skipped: number;
  /** The cache file was unreadable or corrupt and was rebuilt. */
  readonly cacheRebuilt: boolean;
}

/** What {@link dedupe} does with each extra copy. */
export type DedupeAction = 'hardlink' | 'reflink' | 'symlink' | 'delete';

/** Which copy of a group {@link dedupe} keeps. */
export type DedupeKeep = 'first' | 'oldest' | 'newest' | 'shortest-path';

/** Options of {@link dedupe}. */
export interface DedupeOptions {
  /** @default 'hardlink' */
  readonly action?: DedupeAction;
  /** `'first'`: the first path in sort order; `'oldest'`/`'newest'` by mtime; `'shortest-path'` by length. @default 'first' */
  readonly keep?: DedupeKeep;
  /** Check everything (byte-for-byte included) but change nothing. @default false */
  readonly dryRun?: boolean;
  readonly signal?: AbortSignal;
}

/** One replaced (or, in a dry run, replaceable) path. */
export interface DedupeDone {
  readonly path: string;
  /**
   * The exact bytes of `path`, set only when a name in it is not valid UTF-8 (from the group's `rawPaths`): `path` is
   * then a lossy form, fit for display only, and these bytes are what was replaced.
   */
  readonly rawPath?: Buffer;
  readonly action: DedupeAction;
  /** The path of the copy kept, which `path` now links to (or duplicated, for delete). */
  readonly keptPath: string;
  /** The exact bytes of `keptPath`, set only when a name in it is not valid UTF-8 (a symlink's target is made of them). */
  readonly keptRawPath?: Buffer;
}

/** One path left alone, and why. */
export interface DedupeSkip {
  /** The path (the lossy form of a name that is not valid UTF-8, as in the error's message and `error.path`). */
  readonly path: string;
  /** The exact bytes of `path`, set only when a name in it is not valid UTF-8. */
  readonly rawPath?: Buffer;
  readonly code: DedupErrorCode;
  /** A sentence for a person, e.g. `changed since the scan: no longer equal to /a/kept.jpg`. */
  readonly reason: string;
  readonly error: DedupError;
}

/** What {@link dedupe} did. */
export interface DedupeResult {
  readonly dryRun: boolean;
  readonly done: readonly DedupeDone[];
  readonly skipped: readonly DedupeSkip[];
  /** Bytes freed (or freeable): sizes of the files whose every listed name was replaced. */
  readonly bytesSaved: number;
}
