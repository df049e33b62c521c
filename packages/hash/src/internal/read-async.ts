import { close, fstat, open, read, type Stats } from 'node:fs';
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
import { acquire, release } from './node-engines.js';
import { planSegments } from './plan.js';
import { fileResult } from './raw.js';

// The callback API of node:fs, wrapped by hand: it costs markedly less CPU per call than FileHandle, which matters
// when many small files are hashed on this thread.
function openFd(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    open(path, OPEN_FLAGS, (err, fd) => (err ? reject(ioError(err, path, 'open')) : resolve(fd)));
  });
}

function statFd(fd: number, path: string): Promise<Stats> {
  return new Promise((resolve, reject) => {
    fstat(fd, (err, st) => (err ? reject(ioError(err, path, 'stat')) : resolve(st)));
  });
}

function readFd(fd: number, buf: Buffer, length: number, position: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, 0, length, position, (err, n) => (err ? reject(ioError(err, path, 'read')) : resolve(n)));
  });
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => {
    close(fd, () => resolve());
  });
}

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
  const { hasher, engine } = await acquire(algorithm);
  let fd: number;
  try {
    fd = await openFd(path);
  } catch (e) {
    release(algorithm, hasher);
    throw e;
  }
  const bufs = [takeBuffer(), takeBuffer()] as const;
  let pending: Promise<number> | undefined;
  try {
    const before = await statFd(fd, path);
    checkRegular(before, path);
    const segments = planSegments(before.size, range);
    onPlanned?.(segments.reduce((n, s) => n + s.length, 0));
    for (const seg of segments) {
      const end = seg.offset + seg.length;
      let pos = seg.offset;
      let which = 0;
      const readAt = (at: number, buf: Buffer) => readFd(fd, buf, Math.min(CHUNK_BYTES, end - at), at, path);
      pending = pos < end ? readAt(pos, bufs[0]) : undefined;
      while (pending !== undefined) {
        const bytesRead = await pending;
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
    checkUnchanged(before, await statFd(fd, path), path);
    return fileResult(path, algorithm, hasher, before.size, engine);
  } finally {
    // A read may still be in flight into one of the buffers: let it land before the buffers are reused.
    await pending?.catch(() => undefined);
    release(algorithm, hasher);
    giveBuffer(bufs[0]);
    giveBuffer(bufs[1]);
    await closeFd(fd);
  }
}
