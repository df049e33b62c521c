import { HashError } from '@fsw/errors';
import type { StreamHasher } from '../types.js';

/** Feeds every chunk of a web `ReadableStream` or an async iterable of bytes to `hasher`; returns the hex digest. */
export async function consume(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  hasher: StreamHasher,
  signal: AbortSignal | undefined,
): Promise<string> {
  signal?.throwIfAborted();
  if (typeof (source as ReadableStream<Uint8Array>).getReader === 'function') {
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    const onAbort = () => void reader.cancel(signal?.reason).catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        signal?.throwIfAborted();
        if (done) break;
        hasher.update(value);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      reader.releaseLock();
    }
    return hasher.digest();
  }
  if (typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] !== 'function') {
    throw new HashError('E_INVALID_ARGUMENT', 'expected a ReadableStream or an async iterable of Uint8Array');
  }
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    signal?.throwIfAborted();
    hasher.update(chunk);
  }
  return hasher.digest();
}
