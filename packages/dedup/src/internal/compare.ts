import { type FileHandle, open } from 'node:fs/promises';
import { DedupError, fromErrno } from '@fsw/errors';
import { type FsPath, shown } from './fs-path.js';

const CHUNK = 256 * 1024;

/** Which of the two paths failed, so the caller can name it. */
export class CompareReadError extends Error {
  constructor(
    readonly path: string,
    readonly error: DedupError,
  ) {
    super(error.message, { cause: error });
  }
}

/** Fills `buffer` from `position` unless the file ends first (regular files may still return short reads). */
async function readFull(handle: FileHandle, path: string, buffer: Buffer, position: number): Promise<number> {
  let filled = 0;
  try {
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
  } catch (error) {
    throw new CompareReadError(path, fromErrno(error, { path, family: DedupError, action: 'read' }));
  }
  return filled;
}

async function openFor(file: FsPath) {
  const path = shown(file);
  try {
    return await open(file, 'r');
  } catch (error) {
    throw new CompareReadError(path, fromErrno(error, { path, family: DedupError, action: 'open' }));
  }
}

/**
 * True when the two files hold the same bytes, read side by side in large chunks (stopping at the first
 * difference). `onBytes` receives the bytes read from both.
 * @throws CompareReadError naming the path that could not be opened or read
 */
export async function filesEqual(
  fileA: FsPath,
  fileB: FsPath,
  options: { signal?: AbortSignal | undefined; onBytes?: (n: number) => void } = {},
): Promise<boolean> {
  options.signal?.throwIfAborted();
  // Shown in errors (the lossy form of a name that is not valid UTF-8).
  const a = shown(fileA);
  const b = shown(fileB);
  const fa = await openFor(fileA);
  try {
    const fb = await openFor(fileB);
    try {
      const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
      if (sa.size !== sb.size) return false;
      const ba = Buffer.allocUnsafe(CHUNK);
      const bb = Buffer.allocUnsafe(CHUNK);
      let position = 0;
      for (;;) {
        options.signal?.throwIfAborted();
        const [na, nb] = await Promise.all([readFull(fa, a, ba, position), readFull(fb, b, bb, position)]);
        options.onBytes?.(na + nb);
        if (na !== nb) return false;
        if (na === 0) return true;
        if (ba.compare(bb, 0, nb, 0, na) !== 0) return false;
        position += na;
      }
    } finally {
      await fb.close();
    }
  } finally {
    await fa.close();
  }
}
