import type { CommonErrorCode } from './codes.js';
import type { FswError, FswErrorOptions } from './fsw-error.js';

/** A Node.js system error: `code` is the errno name (`ENOENT`...), `syscall` the failed call. */
export interface ErrnoLike {
  readonly code?: unknown;
  readonly syscall?: unknown;
  readonly message?: unknown;
}

/** An error class of one family, e.g. `WalkError`. */
export type ErrorFamily<E extends FswError<string>> = new (
  code: CommonErrorCode,
  message: string,
  options?: FswErrorOptions,
) => E;

/** Options of {@link fromErrno}. */
export interface FromErrnoOptions<E extends FswError<string>> {
  /** The path the failed operation was about; it appears in the message and as `error.path`. */
  readonly path?: string;
  /** The class to build, e.g. `WalkError`. */
  readonly family: ErrorFamily<E>;
  /**
   * What was being done, phrased to follow "cannot": e.g. `'read directory'` gives
   * `cannot read directory /x/y: permission denied (EACCES)`.
   * @default derived from the failed system call, else `'access'`
   */
  readonly action?: string;
}

const CODES: Readonly<Record<string, CommonErrorCode>> = {
  ENOENT: 'E_NOT_FOUND',
  EACCES: 'E_PERMISSION',
  EPERM: 'E_PERMISSION',
  EROFS: 'E_PERMISSION',
  EEXIST: 'E_EXISTS',
  ENOTEMPTY: 'E_EXISTS',
  ENOTDIR: 'E_NOT_DIR',
  EISDIR: 'E_IS_DIR',
  ELOOP: 'E_LOOP',
  ENOSPC: 'E_NO_SPACE',
  EDQUOT: 'E_NO_SPACE',
  EXDEV: 'E_CROSS_DEVICE',
  EMFILE: 'E_TOO_MANY_FILES',
  ENFILE: 'E_TOO_MANY_FILES',
  EINVAL: 'E_INVALID_ARGUMENT',
  ENAMETOOLONG: 'E_INVALID_ARGUMENT',
};

const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EEXIST: 'already exists',
  ENOTEMPTY: 'directory not empty',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'too many levels of symbolic links',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EXDEV: 'cross-device link not permitted',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
  EINVAL: 'invalid argument',
  ENAMETOOLONG: 'file name too long',
  EIO: 'input/output error',
  EBUSY: 'resource busy',
  EAGAIN: 'resource temporarily unavailable',
};

const ACTIONS: Readonly<Record<string, string>> = {
  scandir: 'read directory',
  opendir: 'read directory',
  readdir: 'read directory',
  open: 'open',
  read: 'read',
  write: 'write',
  stat: 'stat',
  lstat: 'stat',
  fstat: 'stat',
  mkdir: 'create directory',
  rmdir: 'remove directory',
  unlink: 'remove',
  rename: 'rename',
  link: 'link',
  symlink: 'create symlink',
  readlink: 'read symlink',
  copyfile: 'copy',
  chmod: 'change mode of',
  utime: 'set times of',
  futime: 'set times of',
};

/** The `@fsw` code for a Node.js errno name: `ENOENT` -> `E_NOT_FOUND`; unknown names give `E_IO`. */
export function codeFromErrno(errno: string | undefined): CommonErrorCode {
  return (errno !== undefined && CODES[errno]) || 'E_IO';
}

function describe(errno: string | undefined, original: unknown): string {
  if (errno !== undefined && REASONS[errno] !== undefined) return REASONS[errno];
  const message = typeof original === 'string' ? original : '';
  // Node formats system errors as "ECODE: description, syscall 'path'": keep the description only.
  const match = /^[A-Z0-9_]+: ([^,]+)/.exec(message);
  return match?.[1] ?? (message || 'unknown error');
}

/**
 * Turns a Node.js errno error into the right `@fsw` error class and code, keeping the original as `cause`.
 * `fromErrno(err, { path: '/x/y', family: WalkError, action: 'read directory' })` gives
 * `WalkError: cannot read directory /x/y: permission denied (EACCES)` with `code: 'E_PERMISSION'`.
 */
export function fromErrno<E extends FswError<string>>(error: unknown, options: FromErrnoOptions<E>): E {
  const err = (typeof error === 'object' && error !== null ? error : {}) as ErrnoLike;
  const errno = typeof err.code === 'string' ? err.code : undefined;
  const syscall = typeof err.syscall === 'string' ? err.syscall : undefined;
  const action = options.action ?? (syscall !== undefined ? ACTIONS[syscall] : undefined) ?? 'access';
  const where = options.path !== undefined ? ` ${options.path}` : '';
  const reason = describe(errno, typeof error === 'string' ? error : err.message);
  const suffix = errno !== undefined && /^E[A-Z0-9]+$/.test(errno) ? ` (${errno})` : '';
  const message = `cannot ${action}${where}: ${reason}${suffix}`;
  const init: FswErrorOptions =
    options.path !== undefined ? { path: options.path, cause: error } : { cause: error };
  return new options.family(codeFromErrno(errno), message, init);
}
