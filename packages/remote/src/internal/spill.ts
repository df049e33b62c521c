import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RemoteError } from '@fsw/errors';
import { createHasher } from '@fsw/hash';
import { type ObjectKind, type Store, splitDigest } from '@fsw/tree';

/**
 * Streams an object into a store without holding it in memory: written to a temp file in the store (the store's
 * `.tmp-` prefix, so eviction cleans up after a crash) while it is hashed, then renamed into place only when it
 * hashes to `digest`. Returns the byte count.
 * @throws RemoteError E_DIGEST_MISMATCH (nothing stored)
 */
export async function streamIntoStore(
  store: Store,
  digest: string,
  kind: ObjectKind,
  source: AsyncIterable<Uint8Array>,
  origin: string,
): Promise<number> {
  const { algorithm, hex } = splitDigest(digest);
  const hasher = await createHasher(algorithm);
  const objects = join(store.dir, 'objects');
  await mkdir(objects, { recursive: true });
  const temp = join(objects, `.tmp-${process.pid}-stream-${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, 'wx', 0o644);
  let closed = false;
  try {
    let size = 0;
    for await (const chunk of source) {
      hasher.update(chunk);
      size += chunk.length;
      await handle.write(chunk);
    }
    await handle.close();
    closed = true;
    const actual = hasher.digest();
    if (actual !== hex) {
      throw new RemoteError(
        'E_DIGEST_MISMATCH',
        `object ${digest} from ${origin} hashes to ${algorithm}:${actual}: refused, nothing stored`,
        { path: origin },
      );
    }
    const final = store.path(digest, kind);
    await mkdir(dirname(final), { recursive: true });
    await rename(temp, final);
    return size;
  } catch (error) {
    if (!closed) await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  }
}
