import { assertAlgorithm } from './algorithms.js';
import { validateRange } from './internal/plan.js';
import { hashFileAsync } from './internal/read-async.js';
import type { HashFileOptions, HashResult } from './types.js';

/**
 * Hashes one file (or a range of it) on the calling thread, reading the next chunk while hashing the current one.
 * The file is opened non-blocking and checked with fstat first, so a FIFO, socket or device is refused at once
 * instead of blocking forever.
 *
 * @param path - The file to hash.
 * @param options - `algorithm` (default `'blake3'`), `range` (`{ offset, length }`, `{ head }`, `{ tail }` or
 *   `{ head, tail }`: those bytes hashed together; the whole file when it is shorter than head + tail), `signal`.
 * @returns The lowercase hex digest, the file's full size and the engine that ran.
 * @throws {HashError} `E_INVALID_ARGUMENT` (unknown algorithm, bad range), `E_NOT_FOUND`, `E_PERMISSION`,
 *   `E_IS_DIR`, `E_NOT_FILE` (FIFO, socket, device), `E_CHANGED` (size or mtime changed while hashing), `E_IO`.
 * @throws `signal.reason` when the signal aborts.
 */
export function hashFile(path: string, options: HashFileOptions = {}): Promise<HashResult> {
  try {
    const algorithm = assertAlgorithm(options.algorithm ?? 'blake3');
    validateRange(options.range);
    return hashFileAsync(path, algorithm, options.range, options.signal);
  } catch (e) {
    return Promise.reject(e);
  }
}
