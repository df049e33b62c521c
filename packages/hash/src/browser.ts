// The `browser` entry of @fsw/hash: no `node:` imports; hash-wasm runs every algorithm.
import { assertAlgorithm } from './algorithms.js';
import { consume } from './internal/consume.js';
import { toStreamHasher } from './internal/stream-hasher.js';
import { wasmEngine } from './internal/wasm-static.js';
import type { HashAlgorithm, HashBytesOptions, HashStreamOptions, StreamHasher } from './types.js';

export { ALGORITHMS, isHashAlgorithm } from './algorithms.js';
export type { HashAlgorithm, HashBytesOptions, Hasher, HashStreamOptions, StreamHasher } from './types.js';

/**
 * Creates an incremental hasher (hash-wasm). Asynchronous because the WebAssembly module compiles on first use.
 * @param algorithm - @default 'blake3'
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm (the message lists the valid ones).
 */
export async function createHasher(algorithm: HashAlgorithm = 'blake3'): Promise<StreamHasher> {
  const algo = assertAlgorithm(algorithm);
  return toStreamHasher(algo, wasmEngine.name, await wasmEngine.create(algo));
}

/**
 * Hashes bytes in memory (a string as UTF-8) and resolves to the lowercase hex digest.
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm or data that is neither a Uint8Array nor a string.
 */
export async function hashBytes(data: Uint8Array | string, options: HashBytesOptions = {}): Promise<string> {
  return (await createHasher(options.algorithm ?? 'blake3')).update(data).digest();
}

/**
 * Hashes a `ReadableStream` of bytes (e.g. `response.body`, `blob.stream()`) or an async iterable of `Uint8Array`
 * to the lowercase hex digest, reading it to the end; a stream is cancelled if the signal aborts.
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm or a chunk that is not a Uint8Array.
 * @throws `signal.reason` when the signal aborts.
 */
export async function hashStream(
  stream: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: HashStreamOptions = {},
): Promise<string> {
  options.signal?.throwIfAborted();
  return consume(stream, await createHasher(options.algorithm ?? 'blake3'), options.signal);
}

/**
 * Hashes a `Blob` or `File` without loading it whole into memory.
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm.
 * @throws `signal.reason` when the signal aborts.
 */
export function hashBlob(blob: Blob, options: HashStreamOptions = {}): Promise<string> {
  return hashStream(blob.stream() as ReadableStream<Uint8Array>, options);
}

/** Which engine hashes each algorithm here: always `'hash-wasm'` in the browser entry. */
export function engines(): Readonly<Record<HashAlgorithm, string>> {
  return {
    blake3: 'hash-wasm',
    sha256: 'hash-wasm',
    sha512: 'hash-wasm',
    sha1: 'hash-wasm',
    md5: 'hash-wasm',
    xxh3: 'hash-wasm',
    xxh128: 'hash-wasm',
    xxh64: 'hash-wasm',
    crc32: 'hash-wasm',
  };
}
