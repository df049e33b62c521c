import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import type { HashAlgorithm, HashRange, HashResult } from '../types.js';
import {
  CHUNK_BYTES,
  checkRegular,
  checkUnchanged,
  ioError,
  OPEN_FLAGS,
  shrunk,
  sizeChanged,
} from './file-checks.js';
import { planSegments } from './plan.js';
import { fileResult, type RawHasher } from './raw.js';

/**
 * Hashes one file with blocking reads: for worker threads, where blocking costs nothing and saves the
 * promise round-trips, and for small files on the main thread (see `Pool`). `onBytes` reports progress;
 * `cancelled` is polled between chunks. With `maxBytes`, a file (or range) planned to hash more than that is not
 * read: the result is `null`.
 */
export function hashFileSync(
  path: string,
  algorithm: HashAlgorithm,
  range: HashRange | undefined,
  hasher: RawHasher,
  engine: string,
  buf: Buffer,
  onBytes: (n: number) => void,
  cancelled: () => boolean,
  onPlanned?: (bytes: number) => void,
  maxBytes = Number.POSITIVE_INFINITY,
): HashResult | undefined | null {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw ioError(e, path, 'open');
  }
  try {
    let before: Stats;
    try {
      before = fstatSync(fd);
    } catch (e) {
      throw ioError(e, path, 'stat');
    }
    checkRegular(before, path);
    hasher.reset();
    const size = before.size;
    if (range === undefined && size < buf.length && size <= maxBytes) {
      // The whole file in one read, asking for one byte more than fstat promised: a file that grew or shrank since
      // reads a different count. One read is one snapshot, so the second fstat (and its Stats object, four Dates in
      // Node 20) that guards multi-read files against changes between reads is not needed here.
      onPlanned?.(size);
      let n: number;
      try {
        n = readSync(fd, buf, 0, size + 1, 0);
      } catch (e) {
        throw ioError(e, path, 'read');
      }
      if (n !== size) throw sizeChanged(path, size, n);
      hasher.update(buf.subarray(0, n));
      if (n > 0) onBytes(n);
      return fileResult(path, algorithm, hasher, size, engine);
    }
    const segments = planSegments(size, range);
    const planned = segments.reduce((n, s) => n + s.length, 0);
    if (planned > maxBytes) return null;
    onPlanned?.(planned);
    for (const seg of segments) {
      const end = seg.offset + seg.length;
      let pos = seg.offset;
      while (pos < end) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, Math.min(CHUNK_BYTES, end - pos), pos);
        } catch (e) {
          throw ioError(e, path, 'read');
        }
        if (n === 0) throw shrunk(path, seg.length, pos - seg.offset);
        hasher.update(buf.subarray(0, n));
        pos += n;
        onBytes(n);
        if (cancelled()) return undefined;
      }
    }
    let after: Stats;
    try {
      after = fstatSync(fd);
    } catch (e) {
      throw ioError(e, path, 'stat');
    }
    checkUnchanged(before, after, path);
    return fileResult(path, algorithm, hasher, before.size, engine);
  } finally {
    closeSync(fd);
  }
}
