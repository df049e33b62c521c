import { RemoteError } from '@fsw/errors';
import type { RequestEvent } from '../types.js';
import type { Metrics } from './metrics.js';
import type { ObjectSet } from './objects.js';

/** Everything a protocol front-end needs: the objects, the counters, the auth check and the request log. */
export interface ServiceContext {
  readonly objects: ObjectSet;
  readonly metrics: Metrics;
  readonly authorized: (header: string | undefined) => boolean;
  readonly maxObjectBytes: number;
  readonly maxBytes: number;
  readonly onRequest: ((event: RequestEvent) => void) | undefined;
  /** Background failures (never a client's fault): logged by the owner. */
  readonly onError: (error: unknown) => void;
  /** Tracks a running request so that `close()` can wait for it. */
  readonly track: <T>(work: Promise<T>) => Promise<T>;
}

/** How a failure is answered: the HTTP status and the gRPC status name family it maps to. */
export type Failure = 'invalid' | 'too-large' | 'no-space' | 'internal';

/** Classifies an error thrown while serving a request. */
export function classify(error: unknown): Failure {
  if (RemoteError.is(error)) {
    if (error.code === 'E_DIGEST_MISMATCH' || error.code === 'E_INVALID_ARGUMENT') return 'invalid';
    if (error.code === 'E_TOO_LARGE') return 'too-large';
    if (error.code === 'E_NO_SPACE') return 'no-space';
  }
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return 'no-space';
  return 'internal';
}

/** The message a client is shown: ours for our errors, a generic one for internal failures (paths stay private). */
export function publicMessage(error: unknown): string {
  const failure = classify(error);
  if (failure === 'no-space') return 'the server is out of disk space';
  if (failure === 'internal') return 'internal server error';
  return error instanceof Error ? error.message : String(error);
}
