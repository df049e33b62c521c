import { constants, createReadStream, readdirSync, type Stats, statSync, utimesSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fromErrno, TreeError } from '@fsw/errors';
import { createHasher, hashBytes, type StreamHasher } from '@fsw/hash';
import pLimit from 'p-limit';
import { type DigestParts, splitDigest } from './digest.js';
import {
  type JobState,
  type StoreTarget,
  SYNC_MAX,
  storeFileSync,
  TEMP_PREFIX,
  tempName,
  writeObjectSync,
} from './internal/file-jobs.js';
import type { ObjectKind, PutManyOptions, PutManyResult, Store, VerifiedObject } from './types.js';

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /**
   * Re-hash every object read through `get`/`read` and fail with `E_CORRUPT` when it does not match its digest.
   * A corrupt object found this way is removed, so that it can be fetched again.
   * @default false
   */
  readonly verify?: boolean;
  /**
   * An object's mtime (its "last used" time for eviction) is refreshed on use only when older than this, which saves
   * a syscall per read. Keep it well below the eviction retention.
   * @default 600_000 (ten minutes)
   */
  readonly touchAfterMs?: number;
}

/** Options of `Store.evict`. */
export interface EvictOptions {
  /** Size to shrink the store to. @default 10 GiB */
  readonly maxBytes?: number;
  /** Objects used more recently than this are never evicted. @default 3_600_000 (one hour) */
  readonly retentionMs?: number;
}

/** What `Store.evict` did. */
export interface EvictResult {
  readonly removed: number;
  readonly bytesFreed: number;
}

/** Where an object is, as found by {@link LocalStore.locate}. */
export interface ObjectLocation {
  readonly path: string;
  readonly kind: ObjectKind;
  readonly size: number;
  /** The object file's permission bits (a copy made with `copyFile` gets them too). */
  readonly mode: number;
}

/** What {@link LocalStore.putFileWithStat} returns: the digest and the file's stat taken before it was read. */
export interface PutFileResult {
  readonly digest: string;
  readonly stat: Stats;
  /** False when the store already had the object. */
  readonly written: boolean;
}

/** The on-disk store returned by {@link openStore}: the {@link Store} interface and a few local extras. */
export interface LocalStore extends Store {
  /** Whether `get`/`read` re-hash objects. */
  readonly verify: boolean;
  /** `has`, synchronously (a stat or two): for hot loops over many objects. */
  hasSync(digest: string): boolean;
  /** How old an object's mtime may get before a use refreshes it (see {@link OpenStoreOptions.touchAfterMs}). */
  readonly touchAfterMs: number;
  /** `locate`, synchronously. */
  locateSync(digest: string): ObjectLocation | undefined;
  /** Finds an object under either suffix (and marks it used); `undefined` when absent. */
  locate(digest: string): Promise<ObjectLocation | undefined>;
  /**
   * `putVerified` for many objects at once, with blocking calls on the calling thread in slices of a few
   * milliseconds (the event loop turns between slices): each object is hashed and, when it matches its digest,
   * written atomically (temp file beside it + rename; safe against other writers of the same object) unless already
   * stored. Made for pulls of many small objects, where one thread-pool round trip per call costs more than the
   * write itself; objects are kept in memory by the caller, so keep batches to a few MiB.
   * @throws TreeError from `onError` (default: the first failure, e.g. E_CORRUPT on a mismatch); `signal.reason`
   */
  putManyVerified(objects: readonly VerifiedObject[], options?: PutManyOptions): Promise<PutManyResult>;
  /** Like `putFile`, also returning the stat the file had when it was opened. */
  putFileWithStat(path: string): Promise<PutFileResult>;
  /** Marks an object as just used, for eviction (best effort). */
  touch(digest: string): Promise<void>;
  /** Total bytes and object count (scans the store). */
  usage(): Promise<{ readonly bytes: number; readonly objects: number }>;
  evict(options?: EvictOptions): Promise<EvictResult>;
}

/** Default size limit of `evict`: 10 GiB, as fstree. */
export const DEFAULT_CACHE_BYTES = 10 * 1024 ** 3;
/** Default retention of `evict`: one hour, as fstree. */
export const DEFAULT_RETENTION_MS = 3_600_000;

/** The store directory used when none is given: `FSTREE_CACHE`, else `~/.cache/fstree`. */
export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.FSTREE_CACHE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'fstree');
}

const CHUNK = 1024 * 1024;
/** How long `putManyVerified` blocks the event loop at most before yielding a turn. */
const SLICE_MS = 8;
const SUFFIXES: readonly ObjectKind[] = ['file', 'tree'];
const LIST_AFTER = 32;
const LISTING_TTL_MS = 5000;

let blake3: StreamHasher | undefined;
async function syncHasher(): Promise<StreamHasher> {
  blake3 ??= await createHasher('blake3');
  return blake3;
}
let sha1: StreamHasher | undefined;
/** The main thread's reusable hasher of `algorithm` (used only within one synchronous stretch at a time). */
async function hasherOf(algorithm: DigestParts['algorithm']): Promise<StreamHasher> {
  if (algorithm === 'blake3') return syncHasher();
  sha1 ??= await createHasher('sha1');
  return sha1;
}
let sharedBuffer: Buffer | undefined;
/** The main thread's read buffer for small files, made on first use (importing the codec alone costs nothing). */
function syncBuffer(): Buffer {
  sharedBuffer ??= Buffer.allocUnsafe(SYNC_MAX);
  return sharedBuffer;
}

async function digestOf(bytes: Uint8Array, algorithm: DigestParts['algorithm']): Promise<string> {
  return hashBytes(bytes, { algorithm });
}

function isErrno(error: unknown, ...codes: string[]): boolean {
  return (
    typeof error === 'object' && error !== null && codes.includes((error as { code?: string }).code ?? '')
  );
}

/**
 * Opens the content-addressed object store at `dir` (fstree's cache layout:
 * `objects/<hex[0:2]>/<hex[2:]>.file|.tree`). Nothing is created until the first write.
 *
 * Writes go to a temp file in the same folder and are renamed into place, so readers never see a partial object and
 * two processes writing the same object at once both succeed. Every read (`has`, `get`, `read`, `put` of an object
 * already there) refreshes the object's mtime (at most every `touchAfterMs`): eviction is LRU by mtime, because atime is
 * unreliable on `noatime`/`relatime` mounts.
 *
 * @param dir - @default `FSTREE_CACHE`, else `~/.cache/fstree`
 * @throws TreeError E_INVALID_ARGUMENT (from the methods) for a digest that does not parse
 */
export function openStore(dir?: string, options: OpenStoreOptions = {}): LocalStore {
  const root = dir ?? defaultStoreDir();
  const objects = join(root, 'objects');
  const verify = options.verify === true;
  const touchAfterMs = options.touchAfterMs ?? 600_000;
  const madeDirs = new Set<string>();
  // hasSync answers from a listing of the fan-out folder once it was asked about it often enough: one readdir
  // instead of hundreds of stats on a warm write-tree. Listings expire quickly, as other processes change the store.
  const listings = new Map<string, { readonly at: number; readonly names: Set<string> }>();
  const lookupsPerFan = new Map<string, number>();
  const noteWritten = (final: string) => {
    const fan = final.slice(objects.length + 1, objects.length + 3);
    listings.get(fan)?.names.add(final.slice(objects.length + 4));
  };

  const objectPath = (parts: DigestParts, kind: ObjectKind) =>
    join(objects, parts.hex.slice(0, 2), `${parts.hex.slice(2)}.${kind}`);

  const ensureDir = async (parts: DigestParts): Promise<string> => {
    const sub = join(objects, parts.hex.slice(0, 2));
    if (!madeDirs.has(sub)) {
      try {
        await mkdir(sub, { recursive: true });
      } catch (error) {
        throw fromErrno(error, { path: sub, family: TreeError, action: 'create store directory' });
      }
      madeDirs.add(sub);
    }
    return sub;
  };

  const touchPath = async (path: string, st: Stats | undefined) => {
    const now = Date.now();
    if (st !== undefined && now - st.mtimeMs < touchAfterMs) return;
    try {
      await utimes(path, now / 1000, now / 1000);
    } catch {
      // A read-only store (or an object evicted meanwhile) is still readable; LRU order is only a hint.
    }
  };

  const locateParts = async (
    parts: DigestParts,
  ): Promise<(ObjectLocation & { stats: Stats }) | undefined> => {
    for (const kind of SUFFIXES) {
      const path = objectPath(parts, kind);
      try {
        const stats = await stat(path);
        return { path, kind, size: stats.size, mode: stats.mode & 0o7777, stats };
      } catch (error) {
        if (!isErrno(error, 'ENOENT', 'ENOTDIR')) {
          throw fromErrno(error, { path, family: TreeError, action: 'stat object' });
        }
      }
    }
    return undefined;
  };

  const missing = (digest: string) =>
    new TreeError('E_MISSING_OBJECT', `object ${digest} is not in the store ${root}`, { path: root });

  /** Writes bytes known to hash to `parts` (temp + rename); a no-op (plus touch) when already stored. */
  const writeObject = async (parts: DigestParts, bytes: Uint8Array, kind: ObjectKind): Promise<boolean> => {
    const final = objectPath(parts, kind);
    try {
      const existing = await stat(final);
      await touchPath(final, existing);
      return false;
    } catch (error) {
      if (!isErrno(error, 'ENOENT', 'ENOTDIR')) {
        throw fromErrno(error, { path: final, family: TreeError, action: 'stat object' });
      }
    }
    const sub = await ensureDir(parts);
    const temp = join(sub, tempName(TEMP_PREFIX));
    try {
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(bytes);
      } finally {
        await handle.close();
      }
      await rename(temp, final);
      noteWritten(final);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw fromErrno(error, { path: final, family: TreeError, action: 'write object' });
    }
    return true;
  };

  const algorithmParts = (digest: string) => splitDigest(digest);

  const checkBytes = async (parts: DigestParts, bytes: Uint8Array, path: string) => {
    const actual = await digestOf(bytes, parts.algorithm);
    if (actual !== parts.hex) {
      await unlink(path).catch(() => {});
      throw new TreeError(
        'E_CORRUPT',
        `object ${parts.algorithm}:${parts.hex} in the store hashes to ${parts.algorithm}:${actual}; removed it`,
        { path },
      );
    }
  };

  const target: StoreTarget = { objects, touchAfterMs };

  const mismatchError = (parts: DigestParts, actual: string) =>
    new TreeError(
      'E_CORRUPT',
      `refusing object: bytes hash to ${parts.algorithm}:${actual}, not ${parts.algorithm}:${parts.hex}`,
    );

  /** Verifies and stores one object with blocking calls; returns whether it wrote. Throws TreeError. */
  const putVerifiedSync = (
    parts: DigestParts,
    hasher: StreamHasher,
    bytes: Uint8Array,
    kind: ObjectKind,
  ): boolean => {
    const actual = hasher.reset().update(bytes).digest();
    if (actual !== parts.hex) throw mismatchError(parts, actual);
    let written: boolean;
    try {
      written = writeObjectSync(target, madeDirs, parts.hex, kind, bytes);
    } catch (error) {
      throw fromErrno(error, { path: objectPath(parts, kind), family: TreeError, action: 'write object' });
    }
    if (written) noteWritten(objectPath(parts, kind));
    return written;
  };

  const putManyVerified = async (
    list: readonly VerifiedObject[],
    options: PutManyOptions = {},
  ): Promise<PutManyResult> => {
    const { signal, onError } = options;
    signal?.throwIfAborted();
    const blake3Hasher = await syncHasher();
    let written = 0;
    let present = 0;
    let skipped = 0;
    let sliceStart = performance.now();
    for (let i = 0; i < list.length; i++) {
      if (performance.now() - sliceStart >= SLICE_MS) {
        await nextTurn();
        signal?.throwIfAborted();
        sliceStart = performance.now();
      }
      const object = list[i] as VerifiedObject;
      try {
        const parts = splitDigest(object.digest);
        const hasher = parts.algorithm === 'blake3' ? blake3Hasher : await hasherOf(parts.algorithm);
        if (putVerifiedSync(parts, hasher, object.bytes, object.kind ?? 'file')) written++;
        else present++;
      } catch (error) {
        const e = TreeError.is(error)
          ? error
          : fromErrno(error, { path: root, family: TreeError, action: 'store object' });
        if ((onError?.(e, object, i) ?? 'throw') === 'throw') throw e;
        skipped++;
      }
    }
    return { written, present, skipped };
  };

  const putFileWithStat = async (path: string): Promise<PutFileResult> => {
    const state: JobState = { buffer: syncBuffer(), hasher: await syncHasher(), madeDirs };
    // Read, hashed and stored with blocking calls: for small page-cached files the thread-pool round trip of each
    // asynchronous call costs several times the syscall itself.
    const stored = storeFileSync(state, target, path);
    if (stored === 'large') return putLargeFile(path);
    if (stored.written) noteWritten(objectPath({ algorithm: 'blake3', hex: stored.hex }, 'file'));
    return { digest: `blake3:${stored.hex}`, stat: stored.stats, written: stored.written };
  };

  const putLargeFile = async (path: string): Promise<PutFileResult> => {
    let handle: import('node:fs/promises').FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (error) {
      throw fromErrno(error, { path, family: TreeError, action: 'open' });
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        throw new TreeError('E_INVALID_ARGUMENT', `cannot store ${path}: not a regular file`, { path });
      }
      return await streamIntoStore(handle, st, path);
    } catch (error) {
      if (TreeError.is(error)) throw error;
      throw fromErrno(error, { path, family: TreeError, action: 'read' });
    } finally {
      await handle.close();
    }
  };

  const streamIntoStore = async (
    handle: import('node:fs/promises').FileHandle,
    st: Stats,
    path: string,
  ): Promise<PutFileResult> => {
    await mkdir(objects, { recursive: true });
    const temp = join(objects, tempName(TEMP_PREFIX));
    const out = await open(temp, 'wx', 0o644);
    let closed = false;
    try {
      const hasher = await createHasher('blake3');
      const buffer = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
        if (bytesRead === 0) break;
        const chunk = buffer.subarray(0, bytesRead);
        hasher.update(chunk);
        await out.write(chunk);
      }
      await out.close();
      closed = true;
      const hex = hasher.digest();
      const parts: DigestParts = { algorithm: 'blake3', hex };
      const final = objectPath(parts, 'file');
      const existing = await locateParts(parts);
      if (existing?.kind === 'file') {
        await unlink(temp);
        await touchPath(final, existing.stats);
        return { digest: `blake3:${hex}`, stat: st, written: false };
      }
      await ensureDir(parts);
      await rename(temp, final);
      noteWritten(final);
      return { digest: `blake3:${hex}`, stat: st, written: true };
    } catch (error) {
      if (!closed) await out.close().catch(() => {});
      await unlink(temp).catch(() => {});
      throw TreeError.is(error) ? error : fromErrno(error, { path, family: TreeError, action: 'store' });
    }
  };

  const store: LocalStore = {
    dir: root,
    verify,
    touchAfterMs,
    path(digest, kind = 'file') {
      return objectPath(algorithmParts(digest), kind);
    },
    async locate(digest) {
      const found = await locateParts(algorithmParts(digest));
      if (found === undefined) return undefined;
      await touchPath(found.path, found.stats);
      return { path: found.path, kind: found.kind, size: found.size, mode: found.stats.mode & 0o7777 };
    },
    async has(digest) {
      const found = await locateParts(algorithmParts(digest));
      if (found === undefined) return false;
      await touchPath(found.path, found.stats);
      return true;
    },
    async hasMany(digests) {
      const limit = pLimit(32);
      return Promise.all(digests.map((d) => limit(() => store.has(d))));
    },
    async get(digest) {
      const parts = algorithmParts(digest);
      const found = await locateParts(parts);
      if (found === undefined) throw missing(`${parts.algorithm}:${parts.hex}`);
      let bytes: Buffer;
      try {
        const handle = await open(found.path, 'r');
        try {
          bytes = await handle.readFile();
        } finally {
          await handle.close();
        }
      } catch (error) {
        if (isErrno(error, 'ENOENT')) throw missing(`${parts.algorithm}:${parts.hex}`);
        throw fromErrno(error, { path: found.path, family: TreeError, action: 'read object' });
      }
      if (verify) await checkBytes(parts, bytes, found.path);
      await touchPath(found.path, found.stats);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    async read(digest) {
      const parts = algorithmParts(digest);
      const found = await locateParts(parts);
      if (found === undefined) throw missing(`${parts.algorithm}:${parts.hex}`);
      await touchPath(found.path, found.stats);
      const source: Readable = createReadStream(found.path, { highWaterMark: 64 * 1024 });
      if (!verify) return source;
      const hasher = await createHasher(parts.algorithm);
      const checker = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hasher.update(chunk);
          callback(null, chunk);
        },
        flush(callback) {
          const actual = hasher.digest();
          if (actual === parts.hex) return callback();
          unlink(found.path).then(
            () => callback(corruptRead(parts, actual, found.path)),
            () => callback(corruptRead(parts, actual, found.path)),
          );
        },
      });
      source.on('error', (error) => checker.destroy(error));
      return source.pipe(checker);
    },
    async put(bytes, kind = 'file') {
      if (bytes.length < SYNC_MAX) {
        const hex = (await syncHasher()).reset().update(bytes).digest();
        try {
          if (writeObjectSync(target, madeDirs, hex, kind, bytes))
            noteWritten(objectPath({ algorithm: 'blake3', hex }, kind));
        } catch (error) {
          throw fromErrno(error, {
            path: objectPath({ algorithm: 'blake3', hex }, kind),
            family: TreeError,
            action: 'write object',
          });
        }
        return `blake3:${hex}`;
      }
      const hex = await hashBytes(bytes, { algorithm: 'blake3' });
      await writeObject({ algorithm: 'blake3', hex }, bytes, kind);
      return `blake3:${hex}`;
    },
    hasSync(digest) {
      const parts = algorithmParts(digest);
      const fan = parts.hex.slice(0, 2);
      let listing = listings.get(fan);
      if (listing === undefined || Date.now() - listing.at > LISTING_TTL_MS) {
        const lookups = (lookupsPerFan.get(fan) ?? 0) + 1;
        lookupsPerFan.set(fan, lookups);
        if (lookups < LIST_AFTER) return store.locateSync(digest) !== undefined;
        lookupsPerFan.set(fan, 0);
        const sub = join(objects, fan);
        let names: string[];
        try {
          names = readdirSync(sub);
        } catch (error) {
          if (!isErrno(error, 'ENOENT', 'ENOTDIR')) {
            throw fromErrno(error, { path: sub, family: TreeError, action: 'read store directory' });
          }
          names = [];
        }
        listing = { at: Date.now(), names: new Set(names) };
        listings.set(fan, listing);
      }
      const rest = parts.hex.slice(2);
      return listing.names.has(`${rest}.file`) || listing.names.has(`${rest}.tree`);
    },
    locateSync(digest) {
      const parts = algorithmParts(digest);
      for (const kind of SUFFIXES) {
        const path = objectPath(parts, kind);
        const st = statSync(path, { throwIfNoEntry: false });
        if (st === undefined) continue;
        if (Date.now() - st.mtimeMs >= touchAfterMs) {
          try {
            const now = Date.now() / 1000;
            utimesSync(path, now, now);
          } catch {
            // LRU order is only a hint (see touchPath).
          }
        }
        return { path, kind, size: st.size, mode: st.mode & 0o7777 };
      }
      return undefined;
    },
    async putVerified(digest, bytes, kind = 'file') {
      const parts = algorithmParts(digest);
      const actual = await digestOf(bytes, parts.algorithm);
      if (actual !== parts.hex) throw mismatchError(parts, actual);
      await writeObject(parts, bytes, kind);
    },
    putManyVerified,
    async putFile(path) {
      return (await putFileWithStat(path)).digest;
    },
    putFileWithStat,
    async touch(digest) {
      const found = await locateParts(algorithmParts(digest));
      if (found !== undefined) await touchPath(found.path, undefined);
    },
    async usage() {
      const all = await scanObjects(objects);
      return { bytes: all.reduce((n, o) => n + o.size, 0), objects: all.filter((o) => !o.temp).length };
    },
    async evict(evictOptions = {}) {
      const maxBytes = evictOptions.maxBytes ?? DEFAULT_CACHE_BYTES;
      const retentionMs = evictOptions.retentionMs ?? DEFAULT_RETENTION_MS;
      if (!(maxBytes >= 0) || !(retentionMs >= 0)) {
        throw new TreeError(
          'E_INVALID_ARGUMENT',
          'evict: maxBytes and retentionMs must be non-negative numbers',
        );
      }
      const now = Date.now();
      listings.clear();
      const all = await scanObjects(objects);
      let removed = 0;
      let bytesFreed = 0;
      // Temp files left by a crashed writer are garbage once older than the retention time.
      for (const o of all) {
        if (o.temp && now - o.mtimeMs >= retentionMs && (await removeQuietly(o.path))) bytesFreed += o.size;
      }
      const live = all.filter((o) => !o.temp).sort((a, b) => a.mtimeMs - b.mtimeMs);
      let total = live.reduce((n, o) => n + o.size, 0);
      for (const o of live) {
        if (total <= maxBytes) break;
        if (now - o.mtimeMs < retentionMs) break;
        // Re-check just before removing: a reader may have touched it since the scan.
        const fresh = await lstat(o.path).catch(() => undefined);
        if (fresh === undefined) {
          total -= o.size;
          continue;
        }
        if (now - fresh.mtimeMs < retentionMs) continue;
        if (await removeQuietly(o.path)) {
          removed++;
          bytesFreed += o.size;
          total -= o.size;
        }
      }
      return { removed, bytesFreed };
    },
  };
  return store;
}

function corruptRead(parts: DigestParts, actual: string, path: string): TreeError {
  return new TreeError(
    'E_CORRUPT',
    `object ${parts.algorithm}:${parts.hex} in the store hashes to ${parts.algorithm}:${actual}; removed it`,
    { path },
  );
}

async function removeQuietly(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return false;
    throw fromErrno(error, { path, family: TreeError, action: 'remove object' });
  }
}

interface ScannedObject {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly temp: boolean;
}

async function scanObjects(objects: string): Promise<ScannedObject[]> {
  let fanout: string[];
  try {
    fanout = await readdir(objects);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return [];
    throw fromErrno(error, { path: objects, family: TreeError, action: 'read store directory' });
  }
  const limit = pLimit(64);
  const out: ScannedObject[] = [];
  await Promise.all(
    fanout.map(async (name) => {
      const sub = join(objects, name);
      if (name.startsWith(TEMP_PREFIX)) {
        const st = await lstat(sub).catch(() => undefined);
        if (st?.isFile()) out.push({ path: sub, size: st.size, mtimeMs: st.mtimeMs, temp: true });
        return;
      }
      let names: string[];
      try {
        names = await readdir(sub);
      } catch (error) {
        if (isErrno(error, 'ENOENT', 'ENOTDIR')) return;
        throw fromErrno(error, { path: sub, family: TreeError, action: 'read store directory' });
      }
      await Promise.all(
        names.map((n) =>
          limit(async () => {
            const path = join(sub, n);
            const st = await lstat(path).catch(() => undefined);
            if (st?.isFile()) {
              out.push({ path, size: st.size, mtimeMs: st.mtimeMs, temp: n.startsWith(TEMP_PREFIX) });
            }
          }),
        ),
      );
    }),
  );
  return out;
}
