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
  | {
      readonly type: 'done';
      readonly id: number;
      readonly bytes: number;
      /** The result without `path` and `algorithm`, which the main thread knows: less to clone per file. */
      readonly digest: string;
      readonly size: number;
      readonly engine: string;
      readonly planned?: number;
    }
  | { readonly type: 'error'; readonly id: number; readonly bytes: number; readonly error: SerializedError }
  | { readonly type: 'cancelled'; readonly id: number; readonly bytes: number };

/** Main thread -> worker: the jobs queued in one tick, in one message. */
export type JobBatch = readonly JobMessage[];

/** Worker -> main thread: the replies gathered while the worker drained its queue, in one message. */
export type ReplyBatch = readonly ReplyMessage[];

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
