import { setTimeout as sleep } from 'node:timers/promises';
import { RemoteError } from '@fsw/errors';

/** Settings shared by every call of one remote. */
export interface CallSettings {
  readonly url: string;
  readonly token: string | undefined;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
}

const MAX_DELAY_MS = 5_000;

/** An error worth retrying: the remote may answer next time. */
export class TransientError extends Error {
  constructor(
    readonly final: RemoteError,
    /** A delay the server asked for (Retry-After), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(final.message, { cause: final });
  }
}

/**
 * Runs `attempt` until it succeeds, retrying a {@link TransientError} with exponential backoff and full jitter
 * (AWS's "full jitter": a uniform delay in [0, base * 2^n], so many clients retrying at once spread out).
 */
export async function withRetry<T>(
  settings: CallSettings,
  signal: AbortSignal | undefined,
  attempt: (n: number) => Promise<T>,
): Promise<T> {
  for (let n = 0; ; n++) {
    signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!(error instanceof TransientError)) throw error;
      if (n >= settings.retries) throw error.final;
      const cap = Math.min(MAX_DELAY_MS, settings.retryDelayMs * 2 ** n);
      const delay = Math.max(error.retryAfterMs ?? 0, Math.random() * cap);
      await sleep(Math.min(delay, MAX_DELAY_MS), undefined, { signal });
    }
  }
}

/** Node's codes for a connection that broke or never formed: worth a retry. */
const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/** True for a socket-level error (connection refused, reset...). */
export function isTransientErrno(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_ERRNO.has(code);
}

/** A RemoteError naming the remote and, when given, the object. */
export function remoteError(
  code: RemoteError['code'],
  settings: Pick<CallSettings, 'url'>,
  what: string,
  cause?: unknown,
): RemoteError {
  return new RemoteError(code, `${what} (remote ${settings.url})`, { path: settings.url, cause });
}

/** Rejects when `signal` aborts, for racing against calls that cannot take a signal themselves. */
export function abortPromise(signal: AbortSignal | undefined): {
  promise: Promise<never>;
  dispose: () => void;
} {
  if (!signal) return { promise: new Promise<never>(() => {}), dispose: () => {} };
  let onAbort = (): void => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}
