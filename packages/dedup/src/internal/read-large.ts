import { closeSync, openSync } from 'node:fs';
import { DedupError, fromErrno } from '@fsw/errors';
import type { StreamHasher } from '@fsw/hash';
import { type FsPath, shown } from './fs-path.js';
import { OPEN_FLAGS, readFully } from './read-small.js';

/** Bytes read per call: large enough that the per-call costs vanish, small enough to stay in the CPU caches. */
export const CHUNK = 1024 * 1024;

/** Allocates the buffer {@link hashFileRange} reads into (`CHUNK + 1` bytes). */
export function readBuffer(): Buffer {
  return Buffer.allocUnsafe(CHUNK + 1);
}

/**
 * Hashes the first `head` and last `tail` bytes of a file (the whole file when they overlap) with synchronous
 * reads of {@link CHUNK} bytes into `buffer`. Measured on the photo benchmark, this costs less CPU than reading on
 * libuv's thread pool while hashing (which moves every chunk between cores) and far less than a worker pool (its
 * start-up and transfers), and native BLAKE3 hashes several GB/s. One byte more than expected is asked for at the
 * end, so a file that grew or shrank since it was listed is caught without a stat.
 * @returns the bytes hashed; `hasher` holds their digest
 * @throws DedupError `E_CHANGED` when its size is no longer `size`, errno codes (`E_NOT_FOUND`, `E_PERMISSION`...)
 *   when it cannot be opened or read
 */
export function hashFileRange(
  file: FsPath,
  size: number,
  head: number,
  tail: number,
  hasher: StreamHasher,
  buffer: Buffer,
): number {
  const path = shown(file);
  const fd = openForRead(file);
  const changed = () =>
    new DedupError('E_CHANGED', `file changed during the scan: ${path} (${size} bytes when listed)`, {
      path,
    });
  try {
    hasher.reset();
    let total = 0;
    const segment = (from: number, to: number, last: boolean) => {
      for (let at = from; at < to; at += CHUNK) {
        const length = Math.min(CHUNK, to - at);
        // The last chunk asks for one byte more, which must not come: the file would have grown.
        const extra = last && at + length >= to ? 1 : 0;
        if (readFully(fd, buffer, 0, length + extra, at, length) !== length) throw changed();
        hasher.update(buffer.subarray(0, length));
        total += length;
      }
    };
    if (head + tail >= size) {
      segment(0, size, true);
      if (size === 0 && readFully(fd, buffer, 0, 1, 0) !== 0) throw changed();
    } else {
      segment(0, head, false);
      segment(size - tail, size, true);
    }
    return total;
  } catch (error) {
    if (DedupError.is(error)) throw error;
    throw fromErrno(error, { path, family: DedupError, action: 'read' });
  } finally {
    closeSync(fd);
  }
}

function openForRead(file: FsPath): number {
  try {
    return openSync(file, OPEN_FLAGS);
  } catch (error) {
    throw fromErrno(error, { path: shown(file), family: DedupError, action: 'open' });
  }
}

/**
 * Reads `length` bytes of `path` at `at` into `buffer`, asking for one more byte when `last` (there must be none).
 * @throws DedupError `E_CHANGED` when the file is no longer `size` bytes long, errno codes when it cannot be read
 */
function readChunk(
  fd: number,
  file: FsPath,
  size: number,
  buffer: Buffer,
  at: number,
  length: number,
  last: boolean,
): void {
  const path = shown(file);
  let got: number;
  try {
    got = readFully(fd, buffer, 0, length + (last ? 1 : 0), at, length);
  } catch (error) {
    throw fromErrno(error, { path, family: DedupError, action: 'read' });
  }
  if (got !== length) {
    throw new DedupError('E_CHANGED', `file changed during the scan: ${path} (${size} bytes when listed)`, {
      path,
    });
  }
}

/** What {@link hashPairIfEqual} found. */
export interface PairOutcome {
  /** The two files hold the same bytes; `hasher` then holds their digest. */
  readonly equal: boolean;
  /** Bytes read, both files together. */
  readonly bytes: number;
}

/**
 * Reads two files of `size` bytes side by side in chunks of {@link CHUNK}, hashing the first one's bytes as long as
 * the two agree: for a pair of candidates this hashes one file instead of two, and a pair that differs is given up
 * at the first chunk that differs (a near-duplicate costs half the reading). A file that grew or shrank since it
 * was listed is caught by the extra byte asked for at its end, as {@link hashFileRange} does.
 * @throws DedupError naming the file that changed (`E_CHANGED`) or could not be opened or read (errno codes)
 */
export function hashPairIfEqual(
  a: FsPath,
  b: FsPath,
  size: number,
  hasher: StreamHasher,
  bufferA: Buffer,
  bufferB: Buffer,
): PairOutcome {
  const fdA = openForRead(a);
  try {
    const fdB = openForRead(b);
    try {
      hasher.reset();
      let bytes = 0;
      let at = 0;
      do {
        const length = Math.min(CHUNK, size - at);
        const last = at + length >= size;
        readChunk(fdA, a, size, bufferA, at, length, last);
        readChunk(fdB, b, size, bufferB, at, length, last);
        bytes += 2 * length;
        if (bufferA.compare(bufferB, 0, length, 0, length) !== 0) return { equal: false, bytes };
        hasher.update(bufferA.subarray(0, length));
        at += length;
      } while (at < size);
      return { equal: true, bytes };
    } finally {
      closeSync(fdB);
    }
  } finally {
    closeSync(fdA);
  }
}
