export type {
  CommonErrorCode,
  CopyErrorCode,
  DedupErrorCode,
  FswErrorCode,
  HashErrorCode,
  RemoteErrorCode,
  TreeErrorCode,
  WalkErrorCode,
  WatchErrorCode,
} from './codes.js';
export type { ErrnoLike, ErrorFamily, FromErrnoOptions } from './from-errno.js';
export { codeFromErrno, fromErrno } from './from-errno.js';
export type { FswErrorOptions } from './fsw-error.js';
export {
  CopyError,
  DedupError,
  FswError,
  HashError,
  RemoteError,
  TreeError,
  WalkError,
  WatchError,
} from './fsw-error.js';
