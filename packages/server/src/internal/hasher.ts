import { createHash } from 'node:crypto';
import { createHasher } from '@fsw/hash';
import type { DigestAlgorithm } from '@fsw/tree';

/** The incremental hasher the server verifies uploads with. */
export interface ObjectHasher {
  update(data: Uint8Array): void;
  /** Lowercase hex. */
  digest(): string;
}

/** A fresh hasher for `algorithm`: @fsw/hash's (native BLAKE3 when installed) for blake3, OpenSSL for sha1. */
export async function createObjectHasher(algorithm: DigestAlgorithm): Promise<ObjectHasher> {
  if (algorithm === 'sha1') {
    const hash = createHash('sha1');
    return {
      update: (data) => void hash.update(data),
      digest: () => hash.digest('hex'),
    };
  }
  const hasher = await createHasher('blake3');
  return {
    update: (data) => void hasher.update(data),
    digest: () => hasher.digest(),
  };
}
