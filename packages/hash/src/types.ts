import type { HashError } from '@fsw/errors';

/** Every algorithm `@fsw/hash` knows. */
export type HashAlgorithm =
  | 'blake3'
  | 'sha256'
  | 'sha512'
  | 'sha1'
  | 'md5'
  | 'xxh3'
  | 'xxh128'
  | 'xxh64'
  | 'crc32';

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
  /** Which implementation ran: `'native'`, `'node:crypto'`, `'node:zlib'` or `'hash-wasm'`. */
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
  /** Bytes hashed so far. */
  readonly bytesDone: number;
  /**
   * Bytes to hash in all: for an array of paths, the sizes found by a stat of every path before hashing starts
   * (the range's share of each when `range` is set); for an iterable, the sizes of the files opened so far.
   */
  readonly bytesTotal: number;
  /** Files finished so far, hashed or failed. */
  readonly filesDone: number;
  /** The number of paths: known up front for an array, else the number seen so far. */
  readonly filesTotal: number;
  /** Files that failed and were skipped by `onError` so far (they count in `filesDone`). */
  readonly filesFailed: number;
}

/** Options of `hashFiles` and `hashFilesIter`. */
export interface HashFilesOptions extends HashFileOptions {
  /**
   * How many threads hash files at once: the calling thread, which hashes small files (up to 1 MiB) itself in
   * short slices between turns of the event loop, plus worker threads of a pool kept warm between batches, started
   * for files over 1 MiB and, when a core is free, for long runs of small files. `1` hashes on the calling thread
   * with asynchronous reads only, without workers.
   * @default os.availableParallelism()
   */
  readonly concurrency?: number;
  /** Called synchronously, at most every `progressIntervalMs` and once at the end; never awaited. */
  readonly onProgress?: (progress: HashProgress) => void;
  /**
   * Decides what a file that cannot be hashed does to the batch: `'throw'` rejects (and stops the rest),
   * `'skip'` goes on without it. Skipped errors are listed in `HashFilesResult.skipped` and counted in progress.
   * @default () => 'throw'
   */
  readonly onError?: (error: HashError) => 'skip' | 'throw';
  /** Minimum time between two `onProgress` calls. @default 100 */
  readonly progressIntervalMs?: number;
}

/** A {@link Hasher} as returned by `createHasher`: it also tells which algorithm and engine it runs, and can restart. */
export interface StreamHasher extends Hasher {
  readonly algorithm: HashAlgorithm;
  /** Which implementation runs, e.g. `'native'`, `'node:crypto'`, `'hash-wasm'`. */
  readonly engine: string;
  update(data: Uint8Array | string): StreamHasher;
  /** Forgets everything hashed so far (also after `digest()`), so the instance can hash a new input. */
  reset(): StreamHasher;
}

/** Options of `hashBytes`. */
export interface HashBytesOptions {
  /** @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
}

/** Options of `hashFilesIter`: those of `hashFiles`, plus the order results come in. */
export interface HashFilesIterOptions extends HashFilesOptions {
  /**
   * `true` yields results in input order (holding back early finishers); `false` yields each as it finishes.
   * @default false
   */
  readonly ordered?: boolean;
}

/**
 * The results of `hashFiles`, in input order, without the files skipped by `onError`; those errors are in
 * `skipped` (in the order they failed), so that nothing is dropped silently.
 */
export type HashFilesResult = HashResult[] & { readonly skipped: readonly HashError[] };

/** Options of `hashStream` and `hashBlob`. */
export interface HashStreamOptions {
  /** @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
  /** Stops reading; the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** Options of `hashFileBatches`: those of `hashFiles` but `onError` (every error comes back as an entry). */
export type HashFileBatchesOptions = Omit<HashFilesOptions, 'onError'>;

/** One path's entry from `hashFileBatches`: its result, or the error that kept it from being hashed. */
export type HashFileEntry =
  | { readonly path: string; readonly result: HashResult; readonly error?: undefined }
  | { readonly path: string; readonly error: HashError; readonly result?: undefined };
