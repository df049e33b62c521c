/** What happened to a path during one batch, after coalescing. */
export type FileEventType = 'created' | 'modified' | 'deleted' | 'renamed';

/**
 * One change, as delivered in a batch. Events are a discriminated union on `type`: only `renamed` carries `oldPath`.
 * Within one batch every path appears at most once.
 */
export type FileEvent = CreatedEvent | ModifiedEvent | DeletedEvent | RenamedEvent;

interface EventBase {
  /** The absolute path concerned (the watched path joined with the name below it). */
  readonly path: string;
  /** A folder (for `deleted`, as it was last seen; symlinks are never folders). */
  readonly isDir: boolean;
  /** When the first raw notification for this path in the batch arrived (`Date.now()` milliseconds). */
  readonly timeMs: number;
}

/** A path that did not exist before the batch and exists after it. */
export interface CreatedEvent extends EventBase {
  readonly type: 'created';
}

/** A path that existed before and after the batch and was written, replaced (atomic save) or changed attributes. */
export interface ModifiedEvent extends EventBase {
  readonly type: 'modified';
}

/** A path that existed before the batch and no longer does. A deleted folder implies its contents. */
export interface DeletedEvent extends EventBase {
  readonly type: 'deleted';
}

/** A file or folder moved within the watched tree: `oldPath` is gone, `path` is the same inode under its new name. */
export interface RenamedEvent extends EventBase {
  readonly type: 'renamed';
  /** Where the entry was before the move. */
  readonly oldPath: string;
}

/** Filtering options shared by {@link WatchOptions} and {@link SnapshotOptions}. */
export interface FilterOptions {
  /**
   * gitignore-style patterns, relative to the watched folder (`node_modules`, `*.log`, `/build`, `dist/`). Folders they
   * exclude are not watched at all (saving inotify watches) unless a pattern is negated with `!`.
   * @default []
   */
  readonly ignore?: string | readonly string[];
  /**
   * Names of ignore files honoured in every folder, e.g. `['.gitignore']`; a nested file applies to its subtree.
   * @default []
   */
  readonly ignoreFiles?: readonly string[];
  /** Report changes below the direct children too; `false` reports direct children of the folder only. @default true */
  readonly recursive?: boolean;
  /** Which event types to deliver; the others are dropped after coalescing. @default all four */
  readonly types?: readonly FileEventType[];
}

/** Options of {@link watch} and `new FileWatcher()`. Every field is optional. */
export interface WatchOptions extends FilterOptions {
  /**
   * A batch is delivered once no new notification arrived for this long. `0` delivers each notification round of the
   * native backend as it comes.
   * @default 50
   */
  readonly debounceMs?: number;
  /**
   * Under a constant stream of changes, a batch is delivered at the latest this long after its first change.
   * @default 10 * debounceMs
   */
  readonly maxWaitMs?: number;
  /** Stops the watcher; the iterator then throws `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** Options of `writeSnapshot` and `changesSince`. */
export interface SnapshotOptions extends FilterOptions {
  readonly signal?: AbortSignal;
}
