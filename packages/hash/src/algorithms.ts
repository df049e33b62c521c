import { HashError } from '@fsw/errors';
import type { HashAlgorithm } from './types.js';

/** Every algorithm `@fsw/hash` knows, in the order error messages list them. */
export const ALGORITHMS: readonly HashAlgorithm[] = Object.freeze([
  'blake3',
  'sha256',
  'sha512',
  'sha1',
  'md5',
  'xxh3',
  'xxh128',
  'xxh64',
  'crc32',
]);

/** Digest length in bytes of each algorithm. */
export const DIGEST_BYTES: Readonly<Record<HashAlgorithm, number>> = Object.freeze({
  blake3: 32,
  sha256: 32,
  sha512: 64,
  sha1: 20,
  md5: 16,
  xxh3: 8,
  xxh128: 16,
  xxh64: 8,
  crc32: 4,
});

/** True when `name` is one of {@link ALGORITHMS}. */
export function isHashAlgorithm(name: unknown): name is HashAlgorithm {
  return typeof name === 'string' && (ALGORITHMS as readonly string[]).includes(name);
}

/**
 * Returns `name` as a {@link HashAlgorithm}, or throws.
 * @throws {HashError} `E_INVALID_ARGUMENT` when `name` is not one of {@link ALGORITHMS}; the message lists them.
 */
export function assertAlgorithm(name: unknown): HashAlgorithm {
  if (isHashAlgorithm(name)) return name;
  throw new HashError(
    'E_INVALID_ARGUMENT',
    `unknown hash algorithm ${JSON.stringify(String(name))}: expected one of ${ALGORITHMS.join(', ')}`,
  );
}
