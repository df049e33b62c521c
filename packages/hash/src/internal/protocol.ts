import { HashError, type HashErrorCode } from '@fsw/errors';
import type { HashAlgorithm, HashRange } from '../types.js';

/** Slots of the shared cancel array: a batch is cancelled when `flags[batch % CANCEL_SLOTS] === batch`. */
export const CANCEL_SLOTS = 1024;

export interface JobMessage {
  readonly type: 'job';
  readonly id: number;
  readonly batch: number;
  readonly path: string;
  readonly algorithm: HashAlgorithm;
  readonly range: HashRange | undefined;
}

export interface SerializedError {
  readonly code: HashErrorCode;
  readonly message: string;
  readonly path: string | undefined;
  readonly cause: { readonly code?: string; readonly syscall?: string; readonly message: string } | undefined;
}

/** `planned`: the bytes the job will hash, sent once, as soon as the file is open. */
export type ReplyMessage =
  | { readonly type: 'bytes'; readonly id: number; readonly bytes: number; readonly planned?: number }
  | { readonly type: 'error'; readonly id: number; readonly bytes: number; readonly error: SerializedError }
  | { readonly type: 'cancelled'; readonly id: number; readonly bytes: number };

/**
 * Finished jobs in columns, the i-th of each column for one job: structured clone copies a few arrays far faster
 * than an object per file. `bytes`: hashed since the job's last report; `planned`: the bytes the job hashed when
 * not announced before (-1 when it was); `digests`: lowercase hex joined by spaces; `path` and `algorithm` are known
 * to the main thread.
 */
export interface DoneColumns {
  readonly ids: number[];
  readonly bytes: number[];
  readonly planned: number[];
  readonly sizes: number[];
  readonly engines: string[];
  digests: string;
}

/** Main thread -> worker: the jobs queued in one tick, in one message. */
export type JobBatch = readonly JobMessage[];

/**
 * Worker -> main thread: what happened while the worker drained its queue, in one message. `other` (progress,
 * errors, cancellations) is handled before `done`, so a job's progress always comes before its result.
 */
export interface ReplyBatch {
  readonly done: DoneColumns;
  readonly other: readonly ReplyMessage[];
}

/** An empty {@link DoneColumns}. */
export function doneColumns(): DoneColumns {
  return { ids: [], bytes: [], planned: [], sizes: [], engines: [], digests: '' };
}

export interface WorkerData {
  readonly cancel: SharedArrayBuffer;
}

/** A HashError (or anything else) as plain data, since structured clone drops `code`, `path` and the cause's fields. */
export function serializeError(error: unknown): SerializedError {
  if (HashError.is(error)) {
    const c = error.cause as { code?: unknown; syscall?: unknown; message?: unknown } | undefined;
    return {
      code: error.code,
      message: error.message,
      path: error.path,
      cause:
        c === undefined || c === null
          ? undefined
          : {
              ...(typeof c.code === 'string' ? { code: c.code } : {}),
              ...(typeof c.syscall === 'string' ? { syscall: c.syscall } : {}),
              message: String(c.message ?? c),
            },
    };
  }
  return {
    code: 'E_IO',
    message: error instanceof Error ? error.message : String(error),
    path: undefined,
    cause: { message: error instanceof Error ? (error.stack ?? error.message) : String(error) },
  };
}

/** Rebuilds the HashError a worker threw. */
export function deserializeError(e: SerializedError): HashError {
  const cause = e.cause === undefined ? undefined : Object.assign(new Error(e.cause.message), e.cause);
  return new HashError(e.code, e.message, {
    ...(e.path !== undefined ? { path: e.path } : {}),
    ...(cause !== undefined ? { cause } : {}),
  });
}
