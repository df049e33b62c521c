import type { WriteSource } from '../types.js';
import { type CallSettings, remoteError } from './retry.js';

/** The bytes of one write attempt. A one-shot stream can be used once only; a function opens a fresh one. */
export async function openSource(
  data: WriteSource,
  used: boolean,
  settings: CallSettings,
  digest: string,
): Promise<Uint8Array | AsyncIterable<Uint8Array>> {
  if (data instanceof Uint8Array) return data;
  if (typeof data === 'function') return data();
  if (used) {
    throw remoteError(
      'E_UNAVAILABLE',
      settings,
      `write ${digest}: the upload failed midway and its stream cannot be replayed (pass a function that opens it)`,
    );
  }
  return data;
}

/** Yields `source` in chunks of at most `max` bytes (views, not copies). */
export async function* chunksOf(
  source: Uint8Array | AsyncIterable<Uint8Array>,
  max: number,
): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    for (let i = 0; i < source.length; i += max) yield source.subarray(i, Math.min(source.length, i + max));
    return;
  }
  for await (const chunk of source) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (let i = 0; i < bytes.length; i += max) yield bytes.subarray(i, Math.min(bytes.length, i + max));
  }
}
