import { createHasher, type HashAlgorithm, type StreamHasher } from '@fsw/hash';
import { digester } from './digest.js';
import { hashFileRange, readBuffer } from './read-large.js';
import { readSmall } from './read-small.js';

/** Files with at most this many bytes to hash are read with one call into a small buffer. */
export const SMALL_READ = 64 * 1024;

/** What one thread reuses for every file it hashes. */
export interface HashTools {
  readonly digest: (bytes: Uint8Array) => string;
  readonly hasher: StreamHasher;
  readonly small: Buffer;
  readonly large: Buffer;
}

/** The hashers and buffers of one thread for `algorithm`. */
export async function hashTools(algorithm: HashAlgorithm): Promise<HashTools> {
  return {
    digest: await digester(algorithm),
    hasher: await createHasher(algorithm),
    small: Buffer.allocUnsafe(SMALL_READ + 1),
    large: readBuffer(),
  };
}

/**
 * The hex digest of the first `head` and last `tail` bytes of a file (the whole file when they overlap): one read
 * for a small file, chunked reads for a large one. Success means `min(head + tail, size)` bytes were hashed.
 * @throws DedupError as `readSmall` / `hashFileRange`
 */
export function hashOne(path: string, size: number, head: number, tail: number, tools: HashTools): string {
  if (Math.min(head + tail, size) <= SMALL_READ) {
    const n = readSmall(path, size, head, tail, tools.small);
    return tools.digest(tools.small.subarray(0, n));
  }
  hashFileRange(path, size, head, tail, tools.hasher, tools.large);
  const d = tools.hasher.digestBytes();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
}
