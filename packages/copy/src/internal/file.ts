import { constants } from 'node:fs';
import {
  chmod,
  copyFile,
  type FileHandle,
  link,
  lutimes,
  open,
  readlink,
  rename,
  symlink,
  unlink,
  utimes,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CopyError, fromErrno } from '@fsw/errors';
import type { Resolved } from './options.js';
import type { Tracker } from './progress.js';
import { cloneError, errnoOf, NO_CLONE, NO_LINK } from './sync-file.js';

export { errnoOf };

/** One file or symlink to copy or move. */
export interface Job {
  readonly kind: 'file' | 'symlink';
  readonly src: string;
  readonly dest: string;
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
  /**
   * Place the copy with `link()` (fails if the destination appeared meanwhile) rather than `rename()` (replaces):
   * set when the destination directory existed before and the policy must not replace files.
   */
  readonly noReplace: boolean;
  /** The root this job belongs to: shares what was learnt about crossing devices. */
  readonly root: { crossDevice: boolean };
}

/** What the per-file engine needs from the run. */
export interface Engine {
  readonly options: Resolved;
  readonly tracker: Tracker;
  /** Aborted when the run stops (user abort or a fatal error): in-flight copies stop at the next chunk. */
  readonly stop: AbortSignal;
  readonly umask: number;
  /** Set once a clone failed as unsupported, so that later large files go straight to a byte copy. */
  cloneUnsupported: boolean;
  /** Makes unique temp names. */
  next: number;
  readonly token: string;
}

/** Files at least this large are copied in chunks by us (progress within the file, abortable); smaller ones by `fs.copyFile`. */
export const STREAM_THRESHOLD = 8 * 1024 * 1024;
/** Chunk of the streamed copy: two buffers of it are in flight (one read, one written). */
const CHUNK = 4 * 1024 * 1024;

/** Errors that concern the destination rather than the source. */
const DEST_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EFBIG', 'EEXIST', 'EISDIR', 'ENOTDIR']);

/** Maps a failure of copying `job` to a CopyError naming the side it concerns. */
export function copyFailure(error: unknown, job: Pick<Job, 'src' | 'dest'>, verb = 'copy'): CopyError {
  if (CopyError.is(error)) return error;
  const errno = errnoOf(error);
  if (errno !== undefined && DEST_ERRNOS.has(errno)) {
    return fromErrno(error, { path: job.dest, family: CopyError, action: `${verb} ${job.src} to` });
  }
  return fromErrno(error, { path: job.src, family: CopyError, action: verb });
}

/** A temp name next to `dest`: hidden, short (never longer than NAME_MAX whatever `dest` is), unique in this run. */
export function tempPath(engine: Engine, dest: string): string {
  return join(dirname(dest), `.fsw-${engine.token}-${(engine.next++).toString(36)}.tmp`);
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // Already gone (copyFile removes its own partial output on some failures), or the directory is: nothing left.
  }
}

function throwIfStopped(engine: Engine): void {
  if (engine.stop.aborted) throw engine.stop.reason;
}

/**
 * Copies `job` to a temp name in its destination folder, with mode and times applied (and fsynced when asked).
 * On any failure or stop the temp file is removed and the error thrown. Progress bytes are reported as they are
 * written and taken back if the file fails. Returns the temp path and the bytes written.
 */
export async function copyToTemp(engine: Engine, job: Job): Promise<{ tmp: string; bytes: number }> {
  throwIfStopped(engine);
  const tmp = tempPath(engine, job.dest);
  let reported = 0;
  try {
    if (job.kind === 'symlink') {
      await symlink(await readlink(job.src), tmp);
      if (engine.options.preserveTimes) await lutimes(tmp, Date.now() / 1000, job.mtimeMs / 1000);
      throwIfStopped(engine);
      return { tmp, bytes: 0 };
    }
    const bytes = await copyBytes(engine, job, tmp, (n) => {
      reported += n;
      engine.tracker.addBytes(n, job.dest);
    });
    if (reported !== bytes) {
      engine.tracker.addBytes(bytes - reported, job.dest);
      reported = bytes;
    }
    throwIfStopped(engine);
    return { tmp, bytes };
  } catch (error) {
    if (reported !== 0) engine.tracker.addBytes(-reported, job.dest);
    await removeQuietly(tmp);
    throw error;
  }
}

async function copyBytes(
  engine: Engine,
  job: Job,
  tmp: string,
  onBytes: (n: number) => void,
): Promise<number> {
  const { reflink, preserveMode, preserveTimes, fsync } = engine.options;
  const large = job.size >= STREAM_THRESHOLD;
  let cloned = false;
  if (large && reflink !== 'never' && !engine.cloneUnsupported) {
    // A clone is instant whatever the size: try it first, and only stream (for progress) when it is impossible.
    cloned = await tryClone(engine, job, tmp);
  }
  if (!large || cloned) {
    if (!cloned) {
      const flag =
        reflink === 'always'
          ? constants.COPYFILE_FICLONE_FORCE
          : reflink === 'auto'
            ? constants.COPYFILE_FICLONE
            : 0;
      try {
        await copyFile(job.src, tmp, constants.COPYFILE_EXCL | flag);
      } catch (error) {
        if (reflink === 'always' && NO_CLONE.has(errnoOf(error) ?? '')) throw cloneError(error, job);
        throw error;
      }
    }
    // copyFile gives the copy the source's full mode; without preserve it gets what a new file would (often the
    // same bits: then the chmod is skipped, one thread-pool request less per file).
    if (!preserveMode) {
      const wanted = job.mode & 0o777 & ~engine.umask;
      if (wanted !== (job.mode & 0o7777)) await chmod(tmp, wanted);
    }
    if (preserveTimes) await utimes(tmp, Date.now() / 1000, job.mtimeMs / 1000);
    if (fsync) await syncPath(tmp);
    // copyFile copies to the end of the source as it finds it; the plan's size is what progress counts, and a move
    // checks the real size of the copy before it removes anything.
    return job.size;
  }
  return streamCopy(engine, job, tmp, onBytes);
}

async function tryClone(engine: Engine, job: Job, tmp: string): Promise<boolean> {
  try {
    await copyFile(job.src, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch (error) {
    const errno = errnoOf(error) ?? '';
    if (!NO_CLONE.has(errno)) throw error;
    if (engine.options.reflink === 'always') throw cloneError(error, job);
    engine.cloneUnsupported = true;
    await removeQuietly(tmp);
    return false;
  }
}

/** A double-buffered chunked copy: one chunk is read while the previous one is written. */
async function streamCopy(
  engine: Engine,
  job: Job,
  tmp: string,
  onBytes: (n: number) => void,
): Promise<number> {
  const { preserveMode, preserveTimes, fsync } = engine.options;
  const input = await open(job.src, 'r');
  let output: FileHandle | undefined;
  let writing: Promise<void> = Promise.resolve();
  try {
    output = await open(tmp, 'wx', job.mode & 0o777);
    const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] as const;
    let position = 0;
    const out = output;
    for (let turn = 0; ; turn++) {
      throwIfStopped(engine);
      const buffer = turn & 1 ? buffers[1] : buffers[0];
      const { bytesRead } = await input.read(buffer, 0, CHUNK, position);
      await writing;
      if (bytesRead === 0) break;
      const at = position;
      position += bytesRead;
      writing = (async () => {
        let written = 0;
        while (written < bytesRead) {
          const r = await out.write(buffer, written, bytesRead - written, at + written);
          written += r.bytesWritten;
        }
        onBytes(bytesRead);
      })();
      // Keep the rejection of a write that fails while the next read runs from being reported as unhandled.
      writing.catch(() => {});
    }
    // The creation mode went through the umask; set the exact bits (setuid/setgid/sticky too, like copyFile).
    if (preserveMode) await output.chmod(job.mode & 0o7777);
    if (fsync) await output.sync();
    if (preserveTimes) await output.utimes(Date.now() / 1000, job.mtimeMs / 1000);
    return position;
  } finally {
    // A stop or a failed read can leave one write in flight: let it end before the handle closes.
    await writing.catch(() => {});
    await output?.close();
    await input.close();
  }
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory so that the renames into it survive a power loss. */
export async function syncDir(path: string): Promise<void> {
  try {
    await syncPath(path);
  } catch (error) {
    // Some filesystems refuse fsync on a directory: their renames are as durable as they get.
    if (errnoOf(error) !== 'EINVAL' && errnoOf(error) !== 'EISDIR') throw error;
  }
}

/**
 * Moves `from` (a complete temp file, or the source itself for a same-device move) to `job.dest`. With
 * `noReplace` it uses `link()` + `unlink()`, which fails with EEXIST instead of replacing a file that appeared since
 * the plan. Resolves `false` when the destination exists (the caller decides between skip and E_EXISTS); `from`
 * is then left in place.
 */
export async function place(from: string, job: Job): Promise<boolean> {
  if (job.noReplace) {
    try {
      await link(from, job.dest);
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === 'EEXIST') return false;
      if (errno === undefined || !NO_LINK.has(errno)) throw error;
      await rename(from, job.dest);
      return true;
    }
    await unlink(from);
    return true;
  }
  await rename(from, job.dest);
  return true;
}

/** Removes a temp file that could not be placed. */
export const discard = removeQuietly;
