/** Codes every family can raise. */
export type CommonErrorCode =
  | 'E_NOT_FOUND'
  | 'E_PERMISSION'
  | 'E_EXISTS'
  | 'E_NOT_DIR'
  | 'E_IS_DIR'
  | 'E_LOOP'
  | 'E_NO_SPACE'
  | 'E_CROSS_DEVICE'
  | 'E_TOO_MANY_FILES'
  | 'E_IO'
  | 'E_INVALID_ARGUMENT';

/** Codes raised by `@fsw/walk`. */
export type WalkErrorCode = CommonErrorCode;
/** Codes raised by `@fsw/hash`: `E_NOT_FILE` for FIFOs, sockets and devices; `E_CHANGED` when a file changes while read. */
export type HashErrorCode = CommonErrorCode | 'E_NOT_FILE' | 'E_CHANGED';
/** Codes raised by `@fsw/copy`: `E_CHANGED` when a source changes while it is copied or verified. */
export type CopyErrorCode = CommonErrorCode | 'E_NOT_FILE' | 'E_CHANGED';
/** Codes raised by `@fsw/dedup`: `E_CHANGED` when a file no longer equals the one kept. */
export type DedupErrorCode = CommonErrorCode | 'E_NOT_FILE' | 'E_CHANGED';
/** Codes raised by `@fsw/watch`: `E_WATCH_LIMIT` when the OS runs out of watches (inotify). */
export type WatchErrorCode = CommonErrorCode | 'E_WATCH_LIMIT' | 'E_BACKEND';
/** Codes raised by `@fsw/tree`: `E_CORRUPT` for a malformed or mismatching object, `E_MISSING_OBJECT` for a store that lacks one. */
export type TreeErrorCode = CommonErrorCode | 'E_CORRUPT' | 'E_MISSING_OBJECT' | 'E_NOT_EMPTY';
/**
 * Codes raised by `@fsw/remote` and `@fsw/server`: `E_UNAVAILABLE` when a remote cannot be reached (or a server cannot
 * listen), `E_ADDR_IN_USE` when a server's port is already taken by another listener.
 */
export type RemoteErrorCode =
  | CommonErrorCode
  | 'E_DIGEST_MISMATCH'
  | 'E_UNAVAILABLE'
  | 'E_ADDR_IN_USE'
  | 'E_UNAUTHENTICATED'
  | 'E_PROTOCOL'
  | 'E_TIMEOUT'
  | 'E_MISSING_OBJECT'
  | 'E_TOO_LARGE';

/** Every code any family can raise. */
export type FswErrorCode =
  | WalkErrorCode
  | HashErrorCode
  | CopyErrorCode
  | DedupErrorCode
  | WatchErrorCode
  | TreeErrorCode
  | RemoteErrorCode;
