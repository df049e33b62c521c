import type { HashError } from '@fsw/errors';

/** Every algorithm `@fsw/hash` knows. */
export type HashAlgorithm = 'blake3' | 'sha256' | 'sha512' | 'sha1' | 'md5' | 'xxh3' | 'xxh128' | 'xxh64' | 'crc32';

/** Which bytes of a file to hash: a slice, or the head and/or tail hashed together (the whole file when shorter). */
export type HashRange =
  | { readonly offset: number; readonly length: number }
  | { readonly head: number; readonly tail?: number }
  | { readonly tail: number };

/** The digest of one file (or of a range of it). */
export interface HashResult {
  readonly path: string;
  readonly algorithm: HashAlgorithm;
  /** Lowercase hex. */
  readonly digest: string;
  /** The file's size in bytes. */
  readonly size: number;
  /** Which implementation ran, e.g. `'native'`, `'node:crypto'`, `'hash-wasm'`. */
  readonly engine: string;
}

/** An incremental hasher. */
export interface Hasher {
  update(data: Uint8Array | string): Hasher;
  /** Lowercase hex. */
  digest(): string;
  digestBytes(): Uint8Array;
}

/** Options of `hashFile`. */
export interface HashFileOptions {
  /** @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
  readonly range?: HashRange;
  readonly signal?: AbortSignal;
}

/** Progress of a batch: bytes and files done so far, throttled. */
export interface HashProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly filesDone: number;
  readonly filesTotal: number;
}

/** Options of `hashFiles` and `hashFilesIter`. */
export interface HashFilesOptions extends HashFileOptions {
  readonly concurrency?: number;
  readonly onProgress?: (progress: HashProgress) => void;
  /** @default () => 'throw' */
  readonly onError?: (error: HashError) => 'skip' | 'throw';
}
