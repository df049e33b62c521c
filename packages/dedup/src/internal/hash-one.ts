import type { HashAlgorithm, StreamHasher } from '@fsw/hash';
import { digester } from './digest.js';
import type { FsPath } from './fs-path.js';
import { hashFileRange, hashPairIfEqual, readBuffer } from './read-large.js';
import { readSmall } from './read-small.js';

/** Files with at most this many bytes to hash are read with one call into a small buffer. */
export const SMALL_READ = 64 * 1024;

/** What one thread reuses for every file it hashes. */
export interface HashTools {
  readonly digest: (bytes: Uint8Array) => string;
  /** For `crc32`: the checksum as a number (no string per file), else undefined. */
  readonly crc: ((bytes: Uint8Array) => number) | undefined;
  readonly hasher: StreamHasher;
  readonly small: Buffer;
  readonly large: Buffer;
  /** The second file's chunks when a pair is read side by side (allocated on the first pair). */
  second: Buffer | undefined;
}

/** The hashers and buffers of one thread for `algorithm`. */
export async function hashTools(algorithm: HashAlgorithm): Promise<HashTools> {
  const { digest, crc } = await digester(algorithm);
  // Loaded on first use (tens of ms of module loading that a run answered from its cache file never needs).
  const { createHasher } = await import('@fsw/hash');
  return {
    digest,
    crc,
    hasher: await createHasher(algorithm),
    small: Buffer.allocUnsafe(SMALL_READ + 1),
    large: readBuffer(),
    second: undefined,
  };
}

/**
 * The hex digest of the first `head` and last `tail` bytes of a file (the whole file when they overlap): one read
 * for a small file, chunked reads for a large one. Success means `min(head + tail, size)` bytes were hashed.
 * @throws DedupError as `readSmall` / `hashFileRange`
 */
export function hashOne(path: FsPath, size: number, head: number, tail: number, tools: HashTools): string {
  if (Math.min(head + tail, size) <= SMALL_READ) {
    const n = readSmall(path, size, head, tail, tools.small);
    return tools.digest(tools.small.subarray(0, n));
  }
  hashFileRange(path, size, head, tail, tools.hasher, tools.large);
  const d = tools.hasher.digestBytes();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
}

/**
 * {@link hashOne} as a grouping key: for `crc32` the checksum as a number (see {@link hexOfKey}), else the hex digest.
 * A number costs no string per file, which over 200,000 small files is most of what comparing them costs.
 * @throws DedupError as {@link hashOne}
 */
export function hashKey(path: FsPath, size: number, head: number, tail: number, tools: HashTools): DigestKey {
  const crc = tools.crc;
  if (crc === undefined) return hashOne(path, size, head, tail, tools);
  if (Math.min(head + tail, size) <= SMALL_READ) {
    return crc(tools.small.subarray(0, readSmall(path, size, head, tail, tools.small)));
  }
  return keyOfHex(hashOne(path, size, head, tail, tools));
}

/**
 * Two files of `size` bytes read side by side (see `hashPairIfEqual`): their common key as {@link hashKey} gives it
 * for either when they hold the same bytes, `undefined` when they differ; `bytes` is what was read of both.
 * @throws DedupError naming the file that changed or could not be read
 */
export function pairKey(
  a: FsPath,
  b: FsPath,
  size: number,
  tools: HashTools,
): { key: DigestKey | undefined; bytes: number } {
  tools.second ??= readBuffer();
  const { equal, bytes } = hashPairIfEqual(a, b, size, tools.hasher, tools.large, tools.second);
  if (!equal) return { key: undefined, bytes };
  const d = tools.hasher.digestBytes();
  const hex = Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
  return { key: tools.crc === undefined ? hex : keyOfHex(hex), bytes };
}

/** A digest as a grouping key: a CRC-32 as a number, any other digest as its hex string. */
export type DigestKey = string | number;

/** The hex digest of a key (CRC-32 as 8 big-endian hex digits, as `@fsw/hash` writes it). */
export function hexOfKey(key: DigestKey): string {
  return typeof key === 'number' ? key.toString(16).padStart(8, '0') : key;
}

/** The key of a CRC-32 hex digest. */
export function keyOfHex(hex: string): number {
  return Number.parseInt(hex, 16);
}
