import { HashError } from '@fsw/errors';
import type { HashAlgorithm, StreamHasher } from '../types.js';
import { toHex } from './hex.js';
import type { RawHasher } from './raw.js';

/** Wraps an engine's hasher into the public {@link StreamHasher}: `digest()` finishes it and may be called again. */
export function toStreamHasher(algorithm: HashAlgorithm, engine: string, raw: RawHasher): StreamHasher {
  let result: Uint8Array | undefined;
  const hasher: StreamHasher = {
    algorithm,
    engine,
    update(data) {
      if (result !== undefined) {
        throw new HashError(
          'E_INVALID_ARGUMENT',
          'update() after digest(): call reset() to hash a new input',
        );
      }
      if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
        throw new HashError('E_INVALID_ARGUMENT', 'update() takes a Uint8Array or a string');
      }
      raw.update(data);
      return hasher;
    },
    digestBytes() {
      result ??= raw.digest();
      return result.slice();
    },
    digest() {
      result ??= raw.digest();
      return toHex(result);
    },
    reset() {
      result = undefined;
      raw.reset();
      return hasher;
    },
  };
  return hasher;
}
