import type { HashAlgorithm, HashResult } from '../types.js';
import { toHex } from './hex.js';

/** The minimal incremental hash every engine provides; digest finishes it, reset makes it reusable. */
export interface RawHasher {
  update(data: Uint8Array | string): void;
  digest(): Uint8Array;
  /** The digest in lowercase hex, where the engine makes it directly (cheaper than `toHex(digest())`). */
  digestHex?(): string;
  /** Starts over, so one instance can hash many inputs (hash-wasm instances are costly to create). */
  reset(): void;
}

/** One implementation of some algorithms. */
export interface Engine {
  /** `'native'`, `'node:crypto'` or `'hash-wasm'`. */
  readonly name: string;
  create(algorithm: HashAlgorithm): RawHasher | Promise<RawHasher>;
}

/** The result of hashing a whole file (or its range) with `hasher`: finishes the hasher, in lowercase hex. */
export function fileResult(
  path: string,
  algorithm: HashAlgorithm,
  hasher: RawHasher,
  size: number,
  engine: HashResult['engine'],
): HashResult {
  return { path, algorithm, digest: hasher.digestHex?.() ?? toHex(hasher.digest()), size, engine };
}
