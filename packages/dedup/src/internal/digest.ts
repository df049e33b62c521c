import type { HashAlgorithm } from '@fsw/hash';

// zlib.crc32 exists from Node 20.15 / 22.2 (the floor is 20.19); typed loosely for older @types/node. zlib and
// @fsw/hash are loaded on first use: a run answered from its cache file needs neither.
const zlibCrc32 = () =>
  (process.getBuiltinModule('node:zlib') as { crc32?: (data: Uint8Array) => number }).crc32;

/**
 * A function that returns the lowercase hex digest of `algorithm` over some bytes, with one reused hasher, and for
 * `crc32` the checksum as an unsigned number too (`zlib.crc32` called directly: no object or string per call, which
 * matters over 200,000 small files). Its digests are those of `@fsw/hash` (CRC-32 as 8 big-endian hex digits).
 */
export async function digester(
  algorithm: HashAlgorithm,
): Promise<{ digest: (bytes: Uint8Array) => string; crc: ((bytes: Uint8Array) => number) | undefined }> {
  const crc32 = algorithm === 'crc32' ? zlibCrc32() : undefined;
  if (crc32 !== undefined) {
    const crc = (bytes: Uint8Array) => crc32(bytes) >>> 0;
    return { digest: (bytes) => crc(bytes).toString(16).padStart(8, '0'), crc };
  }
  const { createHasher } = await import('@fsw/hash');
  const hasher = await createHasher(algorithm);
  const digest = (bytes: Uint8Array) => {
    const d = hasher.reset().update(bytes).digestBytes();
    // Buffer's hex is a flat string: concatenation gives a rope, which every Map lookup would flatten again.
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
  };
  return { digest, crc: algorithm === 'crc32' ? (bytes) => Number.parseInt(digest(bytes), 16) : undefined };
}
