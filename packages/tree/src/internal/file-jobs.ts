import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fromErrno, TreeError, type TreeErrorCode } from '@fsw/errors';
import type { StreamHasher } from '@fsw/hash';
import type { ObjectKind } from '../types.js';

// The per-file work of a write-tree and a checkout as loops of synchronous calls: run on the main thread in short
// batches, or in worker threads (batch-worker.ts). An asynchronous fs call costs a thread-pool round trip (futex,
// epoll and eventfd wake-ups), several times the syscall itself for small page-cached files.

/** Prefix of the store's temp files (recognised by evict). */
export const TEMP_PREFIX = '.tmp-';
/** Files below this size are read whole into one buffer; larger ones stream (store.ts). */
export const SYNC_MAX = 1024 * 1024;

/** Prefix of a checkout's temp files, written beside their final name and renamed into place. */
export const CHECKOUT_TEMP_PREFIX = '.fsw-tmp-';
const CHECKOUT_TEMP = /^\.fsw-tmp-\d+-[0-9a-f]+-\d+$/;

/**
 * Whether a name is one {@link tempName} gives a checkout's temp file: a file so named that a checkout finds and the
 * tree lacks was left by an earlier checkout cut short (killed), and is removed as fsw's own.
 */
export function isCheckoutTemp(name: string): boolean {
  return name.startsWith(CHECKOUT_TEMP_PREFIX) && CHECKOUT_TEMP.test(name);
}

let tempCounter = 0;
let tempTag = '';
/** A temp name unique in this process and thread (pid, a random tag, a counter). */
export function tempName(prefix: string): string {
  if (tempTag === '') tempTag = `${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  tempCounter = (tempCounter + 1) % 0x7fffffff;
  return `${prefix}${tempTag}-${tempCounter}`;
}

/** State kept across the jobs of one thread: the read buffer, the hasher and the store folders known to exist. */
export interface JobState {
  readonly buffer: Buffer;
  readonly hasher: StreamHasher;
  readonly madeDirs: Set<string>;
}

/** Where a store's objects are and how often to refresh their mtime (the LRU mark). */
export interface StoreTarget {
  readonly objects: string;
  readonly touchAfterMs: number;
}

/** The object file of `hex` in a store. */
export function objectFile(objects: string, hex: string, kind: ObjectKind): string {
  return join(objects, hex.slice(0, 2), `${hex.slice(2)}.${kind}`);
}

/**
 * Writes bytes known to hash to `hex` into the store (temp file beside it + rename); when the object is already
 * there, only refreshes its mtime (at most every `touchAfterMs`). Returns whether it wrote. Throws the raw errno error.
 */
export function writeObjectSync(
  target: StoreTarget,
  madeDirs: Set<string>,
  hex: string,
  kind: ObjectKind,
  bytes: Uint8Array,
): boolean {
  const final = objectFile(target.objects, hex, kind);
  const existing = statSync(final, { throwIfNoEntry: false });
  if (existing !== undefined) {
    if (Date.now() - existing.mtimeMs >= target.touchAfterMs) {
      try {
        const now = Date.now() / 1000;
        utimesSync(final, now, now);
      } catch {
        // A read-only store is still usable; LRU order is only a hint.
      }
    }
    return false;
  }
  const sub = join(target.objects, hex.slice(0, 2));
  if (!madeDirs.has(sub)) {
    mkdirSync(sub, { recursive: true });
    madeDirs.add(sub);
  }
  const temp = join(sub, tempName(TEMP_PREFIX));
  try {
    const fd = openSync(temp, 'wx', 0o644);
    try {
      writeAll(fd, bytes, bytes.length);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, final);
  } catch (error) {
    unlinkQuietly(temp);
    throw error;
  }
  return true;
}

function writeAll(fd: number, bytes: Uint8Array, length: number): void {
  let at = 0;
  while (at < length) at += writeSync(fd, bytes, at, length - at);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created, or already gone.
  }
}

/** The stat fields a tree index keeps of a file. */
export interface FileFacts {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  /** Full `st_mode`. */
  readonly mode: number;
}

/** A file read, hashed and (with a store) stored: its digest's hex and the stat it had when opened. */
export interface StoredFile extends FileFacts {
  readonly hex: string;
}

/** A job that failed: enough to rebuild the TreeError on any thread. */
export interface JobFailure {
  readonly failed: TreeErrorCode;
  readonly message: string;
  readonly path: string;
}

/** The outcome of one file of a batch; `'large'` for a file to stream instead (not read here). */
export type StoreOutcome = StoredFile | JobFailure | 'large';

/** Whether an outcome is a failure. */
export function isFailure(outcome: unknown): outcome is JobFailure {
  return typeof outcome === 'object' && outcome !== null && 'failed' in outcome;
}

/** The TreeError of a failed job. */
export function failureError(f: JobFailure): TreeError {
  return new TreeError(f.failed, f.message, { path: f.path });
}

function toFailure(error: unknown, path: string, action: string): JobFailure {
  const e = TreeError.is(error) ? error : fromErrno(error, { path, family: TreeError, action });
  return { failed: e.code, message: e.message, path: e.path ?? path };
}

/** What {@link storeFileSync} did with one file. */
export interface StoreFileResult {
  readonly hex: string;
  /** The stat the file had when opened. */
  readonly stats: import('node:fs').Stats;
  /** False when the store already had the object (or there is no store). */
  readonly written: boolean;
}

/**
 * Reads, hashes (BLAKE3) and, with a `target`, stores one file, all with blocking calls. A file of {@link SYNC_MAX}
 * bytes or more is left alone (`'large'`). Throws TreeError.
 */
export function storeFileSync(
  state: JobState,
  target: StoreTarget | undefined,
  path: string,
): StoreFileResult | 'large' {
  const { buffer } = state;
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO put in place of a file must not hang waiting for a writer; it is refused below.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw fromErrno(error, { path, family: TreeError, action: 'open' });
  }
  let length = 0;
  let st: import('node:fs').Stats;
  try {
    st = fstatSync(fd);
    if (st.isDirectory()) throw new TreeError('E_IS_DIR', `cannot store ${path}: is a directory`, { path });
    if (!st.isFile()) {
      throw new TreeError('E_INVALID_ARGUMENT', `cannot store ${path}: not a regular file`, { path });
    }
    if (st.size >= SYNC_MAX) return 'large';
    // Read to EOF (the file may have grown since fstat); a regular file reads short only at its end, so a short
    // read ends the loop without a second read just to see 0.
    for (;;) {
      const want = SYNC_MAX - length;
      const n = readSync(fd, buffer, length, want, null);
      length += n;
      if (n < want) break;
      if (length === SYNC_MAX) return 'large';
    }
  } catch (error) {
    if (TreeError.is(error)) throw error;
    throw fromErrno(error, { path, family: TreeError, action: 'read' });
  } finally {
    closeSync(fd);
  }
  const bytes = buffer.subarray(0, length);
  const hex = state.hasher.reset().update(bytes).digest();
  let written = false;
  if (target !== undefined) {
    try {
      written = writeObjectSync(target, state.madeDirs, hex, 'file', bytes);
    } catch (error) {
      throw fromErrno(error, {
        path: objectFile(target.objects, hex, 'file'),
        family: TreeError,
        action: 'write object',
      });
    }
  }
  return { hex, stats: st, written };
}

/** {@link storeFileSync} over a batch, one outcome per path (errors caught per file). */
export function storeFilesSync(
  state: JobState,
  target: StoreTarget | undefined,
  paths: readonly string[],
): StoreOutcome[] {
  return paths.map((path) => {
    try {
      const r = storeFileSync(state, target, path);
      if (r === 'large') return r;
      const st = r.stats;
      return { hex: r.hex, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, mode: st.mode };
    } catch (error) {
      return toFailure(error, path, 'read');
    }
  });
}

/** One file of a checkout: copy the object `source` to `temp` (a fresh name beside `final`), then rename. */
export interface CheckoutJob {
  readonly source: string;
  readonly temp: string;
  readonly final: string;
  /** Permission bits to give the file. */
  readonly mode: number;
}

/**
 * Writes one checked-out file: the object is read whole, written to a fresh temp file (`wx`: nothing in the way can
 * be written through), given its mode and renamed over the final name (a symlink there is replaced, never
 * followed). A failure removes the temp file. Returns the file's stat. Throws TreeError.
 */
export function checkoutFileSync(state: JobState, job: CheckoutJob): FileFacts {
  const { buffer } = state;
  let out: number | undefined;
  try {
    const src = openSync(job.source, 'r');
    try {
      out = openSync(job.temp, 'wx', job.mode);
      for (;;) {
        const n = readSync(src, buffer, 0, buffer.length, null);
        if (n === 0) break;
        writeAll(out, buffer, n);
        if (n < buffer.length) break;
      }
    } finally {
      closeSync(src);
    }
    let st = fstatSync(out);
    // The umask may have taken bits away: the tree's mode is applied exactly (fchmod leaves mtime alone).
    if ((st.mode & 0o7777) !== job.mode) {
      fchmodSync(out, job.mode);
      st = fstatSync(out);
    }
    closeSync(out);
    out = undefined;
    renameSync(job.temp, job.final);
    return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, mode: st.mode };
  } catch (error) {
    if (out !== undefined) closeSync(out);
    unlinkQuietly(job.temp);
    throw fromErrno(error, { path: job.final, family: TreeError, action: 'write' });
  }
}

/** {@link checkoutFileSync} over a batch, one outcome per job (errors caught per file). */
export function checkoutFilesSync(state: JobState, jobs: readonly CheckoutJob[]): (FileFacts | JobFailure)[] {
  return jobs.map((job) => {
    try {
      return checkoutFileSync(state, job);
    } catch (error) {
      return toFailure(error, job.final, 'write');
    }
  });
}
