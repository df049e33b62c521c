import { CopyError, type CopyErrorCode } from '@fsw/errors';
import type { SyncConfig } from './sync-file.js';

/** What a copy worker thread starts with. */
export interface WorkerInit {
  readonly config: SyncConfig;
  /** Set to non-zero by the main thread when the run stops: the worker checks it between files. */
  readonly stop: Int32Array;
}

/** A batch of small jobs, column by column (cheap to clone: a few arrays rather than an object per file). */
export interface BatchMessage {
  readonly src: readonly string[];
  readonly dest: readonly string[];
  /** size, mode, mtimeMs of each job in turn. */
  readonly numbers: Float64Array;
  /** Per job: {@link SYMLINK} | {@link NO_REPLACE} | {@link CROSS_DEVICE}. */
  readonly flags: Uint8Array;
}

export const SYMLINK = 1;
export const NO_REPLACE = 2;
export const CROSS_DEVICE = 4;

/** A system error or CopyError as plain data. */
export interface SerializedError {
  readonly copy: boolean;
  readonly message: string;
  readonly code: string | undefined;
  readonly errno: number | undefined;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  readonly dest: string | undefined;
}

/** The answer to a batch: jobs run in order until the end, a stop, or the first failure (the last one run). */
export interface BatchReply {
  /** Jobs run (placed, kept, or the one that failed). */
  readonly ran: number;
  /** Per job run: 1 placed, 0 kept (its destination appeared and the policy keeps it). */
  readonly placed: Uint8Array;
  /** The failure of job `ran - 1`, if any. */
  readonly error: SerializedError | undefined;
  /** Jobs at which a same-device rename met EXDEV (their root moves across devices from then on). */
  readonly crossed: readonly number[];
}

/** A failure as plain data, for `postMessage`. */
export function serializeError(error: unknown): SerializedError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as Partial<NodeJS.ErrnoException> & {
    dest?: unknown;
  };
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    copy: CopyError.is(error),
    message: text(e.message) ?? String(error),
    code: text(e.code),
    errno: typeof e.errno === 'number' ? e.errno : undefined,
    syscall: text(e.syscall),
    path: text(e.path),
    dest: text(e.dest),
  };
}

/** The failure back on the main thread: a CopyError as it was, else an Error with the system error's fields. */
export function deserializeError(s: SerializedError): Error {
  if (s.copy) {
    return new CopyError(
      (s.code ?? 'E_IO') as CopyErrorCode,
      s.message,
      s.path !== undefined ? { path: s.path } : {},
    );
  }
  const error = new Error(s.message) as NodeJS.ErrnoException & { dest?: string };
  if (s.code !== undefined) error.code = s.code;
  if (s.errno !== undefined) error.errno = s.errno;
  if (s.syscall !== undefined) error.syscall = s.syscall;
  if (s.path !== undefined) error.path = s.path;
  if (s.dest !== undefined) error.dest = s.dest;
  return error;
}
