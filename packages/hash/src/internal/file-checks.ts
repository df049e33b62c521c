import { constants, type Stats } from 'node:fs';
import { fromErrno, HashError } from '@fsw/errors';

/** Open flags: O_NONBLOCK so that opening a FIFO without a writer returns at once (then fstat refuses it). */
export const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Bytes per read of a large file; smaller files and ranges are read with one call. */
export const CHUNK_BYTES = 1 << 20;

/** Turns a failed open/read into a HashError with the path and the cause. */
export function ioError(error: unknown, path: string, action: 'open' | 'read' | 'stat'): HashError {
  if (HashError.is(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  // open(2) on a Unix socket fails with ENXIO: that is "not a regular file", not an I/O failure.
  if (code === 'ENXIO' || code === 'EOPNOTSUPP') {
    return new HashError('E_NOT_FILE', `cannot hash ${path}: not a regular file (socket or device)`, {
      path,
      cause: error,
    });
  }
  return fromErrno(error, { path, family: HashError, action });
}

function kind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** Refuses anything but a regular file. */
export function checkRegular(st: Stats, path: string): void {
  if (st.isFile()) return;
  if (st.isDirectory()) {
    throw new HashError('E_IS_DIR', `cannot hash ${path}: is a directory`, { path });
  }
  throw new HashError('E_NOT_FILE', `cannot hash ${path}: ${kind(st)}, not a regular file`, { path });
}

/** Compares the stat taken before hashing with the one taken after. */
export function checkUnchanged(before: Stats, after: Stats, path: string): void {
  if (before.size !== after.size || before.mtimeMs !== after.mtimeMs) {
    throw new HashError(
      'E_CHANGED',
      `${path} changed while it was hashed (size ${before.size} -> ${after.size}, mtime ${before.mtimeMs} -> ${after.mtimeMs})`,
      { path },
    );
  }
}

/** The file ended before the bytes its size promised: it shrank while being read. */
export function shrunk(path: string, expected: number, got: number): HashError {
  return new HashError(
    'E_CHANGED',
    `${path} changed while it was hashed (expected ${expected} bytes, read ${got})`,
    {
      path,
    },
  );
}

/** A file read whole in one call returned another count of bytes than its size: it grew or shrank meanwhile. */
export function sizeChanged(path: string, expected: number, got: number): HashError {
  return got < expected
    ? shrunk(path, expected, got)
    : new HashError('E_CHANGED', `${path} changed while it was hashed (it grew past its ${expected} bytes)`, {
        path,
      });
}

const free: Buffer[] = [];

/** A CHUNK_BYTES buffer, reused across calls. */
export function takeBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
}

/** Gives a buffer from {@link takeBuffer} back. */
export function giveBuffer(buf: Buffer): void {
  if (free.length < 8) free.push(buf);
}
