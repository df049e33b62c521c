import { open } from 'node:fs/promises';
import type { HashAlgorithm, HashRange, HashResult } from '../types.js';
import {
  CHUNK_BYTES,
  checkRegular,
  checkUnchanged,
  giveBuffer,
  ioError,
  OPEN_FLAGS,
  shrunk,
  takeBuffer,
} from './file-checks.js';
import { toHex } from './hex.js';
import { acquire, release } from './node-engines.js';
import { planSegments } from './plan.js';

/** Hashes one file on the calling thread with asynchronous reads, reading the next chunk while hashing this one. */
export async function hashFileAsync(
  path: string,
  algorithm: HashAlgorithm,
  range: HashRange | undefined,
  signal: AbortSignal | undefined,
  onBytes?: (n: number) => void,
  onPlanned?: (bytes: number) => void,
): Promise<HashResult> {
  signal?.throwIfAborted();
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, OPEN_FLAGS);
  } catch (e) {
    throw ioError(e, path, 'open');
  }
  const bufs = [takeBuffer(), takeBuffer()] as const;
  const { hasher, engine } = await acquire(algorithm);
  let pending: Promise<{ bytesRead: number }> | undefined;
  try {
    let before: Awaited<ReturnType<typeof fh.stat>>;
    try {
      before = await fh.stat();
    } catch (e) {
      throw ioError(e, path, 'stat');
    }
    checkRegular(before, path);
    const segments = planSegments(before.size, range);
    onPlanned?.(segments.reduce((n, s) => n + s.length, 0));
    for (const seg of segments) {
      const end = seg.offset + seg.length;
      let pos = seg.offset;
      let which = 0;
      const readAt = (at: number, buf: Buffer) =>
        fh.read(buf, 0, Math.min(CHUNK_BYTES, end - at), at).catch((e: unknown) => {
          throw ioError(e, path, 'read');
        });
      pending = pos < end ? readAt(pos, bufs[0]) : undefined;
      while (pending !== undefined) {
        const { bytesRead } = await pending;
        if (bytesRead === 0) throw shrunk(path, seg.length, pos - seg.offset);
        const buf = bufs[which]!;
        pos += bytesRead;
        which ^= 1;
        // Start the next read before hashing this chunk: the kernel copy overlaps the hashing.
        pending = pos < end ? readAt(pos, bufs[which]!) : undefined;
        hasher.update(buf.subarray(0, bytesRead));
        onBytes?.(bytesRead);
        signal?.throwIfAborted();
      }
    }
    let after: typeof before;
    try {
      after = await fh.stat();
    } catch (e) {
      throw ioError(e, path, 'stat');
    }
    checkUnchanged(before, after, path);
    return { path, algorithm, digest: toHex(hasher.digest()), size: before.size, engine };
  } finally {
    // A read may still be in flight into one of the buffers: let it land before the buffers are reused.
    await pending?.catch(() => undefined);
    release(algorithm, hasher);
    giveBuffer(bufs[0]);
    giveBuffer(bufs[1]);
    await fh.close().catch(() => undefined);
  }
}
