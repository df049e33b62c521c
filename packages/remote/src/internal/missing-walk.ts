import { RemoteError } from '@fsw/errors';
import { hashBytes } from '@fsw/hash';
import { decodeTree, splitDigest } from '@fsw/tree';
import pLimit from 'p-limit';
import { normalizeDigest } from '../protocol.js';
import type { MissingResult } from '../types.js';

/** What {@link missingByWalking} needs from a remote that cannot answer `HasTree` itself. */
export interface WalkAccess {
  hasObjects(digests: readonly string[]): Promise<boolean[]>;
  readTree(digest: string): Promise<Uint8Array>;
  readonly concurrency: number;
}

/**
 * Verifies that `bytes` hash to `digest` (BLAKE3 or SHA-1, as the digest says).
 * @throws RemoteError E_DIGEST_MISMATCH
 */
export async function verifyBytes(digest: string, bytes: Uint8Array, origin: string): Promise<void> {
  const { algorithm, hex } = splitDigest(digest);
  const actual = await hashBytes(bytes, { algorithm });
  if (actual !== hex) {
    throw new RemoteError(
      'E_DIGEST_MISMATCH',
      `object ${digest} from ${origin} hashes to ${algorithm}:${actual}: refused, nothing stored`,
      { path: origin },
    );
  }
}

/**
 * `HasTree` done on the client side, level by level: one existence query per level for the trees, one for their
 * files, and a read of every tree the remote has (verified against its digest before it is trusted).
 */
export async function missingByWalking(
  treeDigests: readonly string[],
  access: WalkAccess,
  origin = 'the remote',
): Promise<MissingResult> {
  const trees: string[] = [];
  const objects: string[] = [];
  const seen = new Set<string>();
  const limit = pLimit(access.concurrency);
  let frontier = [...new Set(treeDigests.map((d) => normalizeDigest(d)))];
  for (const d of frontier) seen.add(d);
  while (frontier.length > 0) {
    const present = await access.hasObjects(frontier);
    const have = frontier.filter((_, i) => present[i]);
    frontier.forEach((d, i) => {
      if (!present[i]) trees.push(d);
    });
    const listings = await Promise.all(
      have.map((d) =>
        limit(async () => {
          const bytes = await access.readTree(d);
          await verifyBytes(d, bytes, origin);
          return decodeTree(bytes);
        }),
      ),
    );
    const next: string[] = [];
    const files: string[] = [];
    for (const entries of listings) {
      for (const entry of entries) {
        if (entry.type === 'symlink' || entry.digest === '') continue;
        const d = normalizeDigest(entry.digest);
        if (seen.has(d)) continue;
        seen.add(d);
        (entry.type === 'dir' ? next : files).push(d);
      }
    }
    if (files.length > 0) {
      const filePresent = await access.hasObjects(files);
      files.forEach((d, i) => {
        if (!filePresent[i]) objects.push(d);
      });
    }
    frontier = next;
  }
  return { trees, objects };
}
