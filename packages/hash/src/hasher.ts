import { ALGORITHMS, assertAlgorithm } from './algorithms.js';
import { consume } from './internal/consume.js';
import { acquire, engineFor, release } from './internal/node-engines.js';
import { toStreamHasher } from './internal/stream-hasher.js';
import type { HashAlgorithm, HashBytesOptions, HashStreamOptions, StreamHasher } from './types.js';

/**
 * Creates an incremental hasher: `update(bytes)` any number of times, then `digest()` (lowercase hex) or
 * `digestBytes()`. Asynchronous because the WebAssembly engine compiles its module on first use; after that, every
 * call on the hasher is synchronous.
 *
 * @param algorithm - One of {@link ALGORITHMS}. @default 'blake3'
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm (the message lists the valid ones).
 */
export async function createHasher(algorithm: HashAlgorithm = 'blake3'): Promise<StreamHasher> {
  const algo = assertAlgorithm(algorithm);
  const engine = engineFor(algo);
  return toStreamHasher(algo, engine.name, await engine.create(algo));
}

/**
 * Hashes bytes in memory (a string is hashed as its UTF-8 encoding) and resolves to the lowercase hex digest.
 *
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm or data that is neither a Uint8Array nor a string.
 */
export async function hashBytes(data: Uint8Array | string, options: HashBytesOptions = {}): Promise<string> {
  const algo = assertAlgorithm(options.algorithm ?? 'blake3');
  const { hasher } = await acquire(algo);
  const stream = toStreamHasher(algo, '', hasher);
  try {
    return stream.update(data).digest();
  } finally {
    release(algo, hasher);
  }
}

/**
 * Which engine hashes each algorithm in this process: `'native'` (BLAKE3 from the optional dependency
 * `@napi-rs/blake-hash`), `'node:crypto'` (OpenSSL, for the SHA family and MD5), `'node:zlib'` (CRC-32, Node >= 20.15)
 * or `'hash-wasm'` (WebAssembly).
 */
export function engines(): Readonly<Record<HashAlgorithm, string>> {
  const out = {} as Record<HashAlgorithm, string>;
  for (const a of ALGORITHMS) out[a] = engineFor(a).name;
  return out;
}

/**
 * Hashes a web `ReadableStream` or any async iterable of bytes (a Node `Readable` such as `process.stdin` or
 * `fs.createReadStream()`) to the lowercase hex digest, reading it to the end.
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm or a chunk that is not bytes.
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
 * Hashes a `Blob` (or `File`) without loading it whole into memory.
 * @throws {HashError} `E_INVALID_ARGUMENT` for an unknown algorithm.
 * @throws `signal.reason` when the signal aborts.
 */
export function hashBlob(blob: Blob, options: HashStreamOptions = {}): Promise<string> {
  return hashStream(blob.stream() as ReadableStream<Uint8Array>, options);
}
