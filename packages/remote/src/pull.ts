import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fromErrno, RemoteError, TreeError } from '@fsw/errors';
import { createHasher, hashBytes, type StreamHasher } from '@fsw/hash';
import { decodeTree, type ObjectKind, type Store, splitDigest } from '@fsw/tree';
import { getAll } from './internal/local-trees.js';
import { Presence } from './internal/presence.js';
import { linkedController, ProgressMeter, TaskPool, transferConcurrency } from './internal/progress.js';
import { normalizeDigest } from './protocol.js';
import type { PullOptions, PullResult, Remote } from './types.js';

/** Objects are buffered in memory up to this size, then spilled to a temp file in the store as they stream in. */
const IN_MEMORY_MAX = 8 * 1024 * 1024;
/** Files asked for per `readMany` call. */
const READ_BATCH = 128;
/** Objects received through `readMany` are verified and stored together once this many bytes have arrived. */
const STORE_BATCH_BYTES = 4 * 1024 * 1024;
/** Whole-object attempts when a stream breaks midway (the remote already retried getting it started). */
const READ_ATTEMPTS = 3;

function mismatch(digest: string, actual: string, remote: Remote): RemoteError {
  return new RemoteError(
    'E_DIGEST_MISMATCH',
    `object ${digest} from ${remote.url} hashes to ${actual}: refused, nothing stored`,
    { path: remote.url },
  );
}

/**
 * Downloads one object, verifies its digest while it streams in, and only then puts it in the store (small objects
 * through `putVerified`, large ones spilled to a temp file in the store and renamed into place). Returns its bytes
 * when it was kept in memory (trees always are).
 */
async function fetchInto(
  remote: Remote,
  store: Store,
  digest: string,
  kind: ObjectKind,
  signal: AbortSignal,
): Promise<{ size: number; bytes?: Uint8Array }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchOnce(remote, store, digest, kind, signal);
    } catch (error) {
      const retry = RemoteError.is(error) && error.code === 'E_UNAVAILABLE' && attempt < READ_ATTEMPTS;
      if (!retry || signal.aborted) throw error;
    }
  }
}

/** The error a failed store write of `digest` becomes: a digest mismatch, the store's own error, or a RemoteError. */
async function storeFailure(
  error: unknown,
  remote: Remote,
  store: Store,
  digest: string,
  bytes: Uint8Array,
): Promise<Error> {
  if (TreeError.is(error) && error.code === 'E_CORRUPT') {
    const { algorithm } = splitDigest(digest);
    return mismatch(digest, `${algorithm}:${await hashBytes(bytes, { algorithm })}`, remote);
  }
  if (FswLike(error)) return error as Error;
  return fromErrno(error, { path: store.dir, family: RemoteError, action: `store ${digest}` });
}

/**
 * Puts bytes read from `remote` into the store, verified against their digest.
 * @throws RemoteError E_DIGEST_MISMATCH (nothing stored)
 */
async function putChecked(
  remote: Remote,
  store: Store,
  digest: string,
  bytes: Uint8Array,
  kind: ObjectKind,
): Promise<void> {
  try {
    await store.putVerified(digest, bytes, kind);
  } catch (error) {
    throw await storeFailure(error, remote, store, digest, bytes);
  }
}

/**
 * Puts many objects read from `remote` into the store, each verified against its digest: in one synchronous batch
 * (`putManyVerified`) when the store has it, else one `putVerified` each. Objects before a failing one are stored,
 * the failing one is not.
 * @throws RemoteError E_DIGEST_MISMATCH
 */
async function putAllChecked(
  remote: Remote,
  store: Store,
  objects: readonly Received[],
  kind: ObjectKind,
  signal: AbortSignal,
): Promise<void> {
  if (store.putManyVerified === undefined) {
    for (const o of objects) await putChecked(remote, store, o.digest, o.bytes, kind);
    return;
  }
  let failed: Received | undefined;
  try {
    await store.putManyVerified(
      objects.map((o) => ({ digest: o.digest, bytes: o.bytes, kind })),
      {
        signal,
        onError: (_error, _object, index) => {
          failed = objects[index];
          return 'throw';
        },
      },
    );
  } catch (error) {
    if (failed === undefined || signal.aborted) throw error;
    throw await storeFailure(error, remote, store, failed.digest, failed.bytes);
  }
}

/** An object received whole, not yet verified. */
interface Received {
  readonly digest: string;
  readonly bytes: Uint8Array;
}

async function fetchOnce(
  remote: Remote,
  store: Store,
  digest: string,
  kind: ObjectKind,
  signal: AbortSignal,
): Promise<{ size: number; bytes?: Uint8Array }> {
  const { algorithm, hex } = splitDigest(digest);
  const stream = await remote.read(digest, { signal });
  const chunks: Buffer[] = [];
  let size = 0;
  let spill: { path: string; handle: import('node:fs/promises').FileHandle } | undefined;
  // Objects kept in memory are verified by `putVerified`; only a spilled one is hashed here, as it streams.
  let hasher: StreamHasher | undefined;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (spill === undefined && size > IN_MEMORY_MAX && kind === 'file') {
        hasher = await createHasher(algorithm);
        const objects = join(store.dir, 'objects');
        await mkdir(objects, { recursive: true });
        // The store's temp-file prefix: eviction cleans up what a crash leaves behind.
        const path = join(objects, `.tmp-${process.pid}-pull-${randomBytes(6).toString('hex')}`);
        spill = { path, handle: await open(path, 'wx', 0o644) };
        for (const c of chunks) {
          hasher.update(c);
          await spill.handle.write(c);
        }
        chunks.length = 0;
      }
      if (spill) {
        hasher!.update(chunk);
        await spill.handle.write(chunk);
      } else chunks.push(chunk);
    }
    if (spill) {
      const actual = hasher!.digest();
      if (actual !== hex) throw mismatch(digest, `${algorithm}:${actual}`, remote);
      await spill.handle.close();
      const final = store.path(digest, kind);
      await mkdir(dirname(final), { recursive: true });
      await rename(spill.path, final);
      spill = undefined;
      return { size };
    }
    const bytes = Buffer.concat(chunks);
    await putChecked(remote, store, digest, bytes, kind);
    return { size, bytes };
  } catch (error) {
    stream.destroy();
    if (spill) {
      await spill.handle.close().catch(() => {});
      await unlink(spill.path).catch(() => {});
    }
    if (FswLike(error) || signal.aborted) throw error;
    throw fromErrno(error, { path: store.dir, family: RemoteError, action: `store ${digest}` });
  }
}

function FswLike(error: unknown): boolean {
  return RemoteError.is(error) || TreeError.is(error);
}

/**
 * Downloads the tree `digest` and everything below it from `remote` into `store`, fetching only what the store
 * lacks. Trees are read breadth-first, level by level; files are fetched in parallel as soon as their tree is known.
 * Every object is verified against its digest before it enters the store: a remote sending other bytes fails the
 * pull with `E_DIGEST_MISMATCH` and that object is not stored. A pull interrupted and run again fetches only what
 * is still missing (trees already stored are read locally).
 *
 * @throws RemoteError E_MISSING_OBJECT when the remote lacks an object, E_DIGEST_MISMATCH, E_UNAVAILABLE,
 *   E_UNAUTHENTICATED, E_TIMEOUT
 * @throws TreeError E_CORRUPT for a malformed tree
 */
export async function pull(
  remote: Remote,
  store: Store,
  digest: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const root = normalizeDigest(digest);
  options.signal?.throwIfAborted();
  const concurrency = transferConcurrency('pull', options.concurrency);
  const meter = new ProgressMeter(options.onProgress);
  const { controller, dispose } = linkedController(options.signal);
  const signal = controller.signal;
  const files = new TaskPool(concurrency, controller);
  let objectsDownloaded = 0;
  let bytesDownloaded = 0;
  let objectsPresent = 0;
  const presence = new Presence(store);

  const counted = (size: number) => {
    objectsDownloaded++;
    bytesDownloaded += size;
    meter.objectsDone++;
    meter.bytesDone += size;
    meter.bytesTotal += size;
    meter.tick();
  };

  /**
   * Fetches `digests` into the store through `pool`, verified: several per call when the remote offers it (those it
   * skips, large ones, are read alone), else one call each. `got` receives each object's bytes when kept in memory.
   */
  const fetchAll = (
    pool: TaskPool,
    digests: readonly string[],
    kind: ObjectKind,
    got?: (digest: string, bytes: Uint8Array | undefined) => void,
  ) => {
    const single = async (d: string) => {
      const r = await fetchInto(remote, store, d, kind, signal);
      counted(r.size);
      got?.(d, r.bytes);
    };
    if (remote.batchReads !== true || remote.readMany === undefined || digests.length < 2) {
      for (const d of digests) pool.add(() => single(d));
      return;
    }
    for (let i = 0; i < digests.length; i += READ_BATCH) {
      const batch = digests.slice(i, i + READ_BATCH);
      pool.add(async () => {
        // Received objects wait here, then are verified and stored in one batch of synchronous calls.
        let received: Received[] = [];
        let receivedBytes = 0;
        const keep = async () => {
          const list = received;
          received = [];
          receivedBytes = 0;
          if (list.length === 0) return;
          await putAllChecked(remote, store, list, kind, signal);
          for (const o of list) {
            counted(o.bytes.length);
            got?.(o.digest, o.bytes);
          }
        };
        try {
          await remote.readMany!(
            batch,
            async (d, bytes) => {
              if (bytes === undefined) return single(d);
              received.push({ digest: d, bytes });
              receivedBytes += bytes.length;
              if (receivedBytes >= STORE_BATCH_BYTES) await keep();
            },
            { signal },
          );
        } catch (error) {
          // What arrived whole before the failure is kept (verified): a pull run again fetches only the rest.
          if (!signal.aborted) await keep().catch(() => {});
          throw error;
        }
        await keep();
      });
    }
  };

  try {
    meter.phase = 'transfer';
    const seen = new Set<string>([root]);
    let level = [root];
    while (level.length > 0) {
      files.check();
      const present = await presence.hasMany(level);
      objectsPresent += present.filter(Boolean).length;
      meter.objectsTotal += present.filter((p) => !p).length;
      // Trees of this level, in parallel: read locally when stored, else fetched and verified.
      const treePool = new TaskPool(concurrency, controller);
      const listings: Uint8Array[] = new Array(level.length);
      const fetching: string[] = [];
      const slot = new Map<string, number>();
      const stored: number[] = [];
      level.forEach((d, i) => {
        if (present[i]) stored.push(i);
        else {
          fetching.push(d);
          slot.set(d, i);
        }
      });
      if (stored.length > 0) {
        treePool.add(async () => {
          const bytes = await getAll(
            store,
            stored.map((i) => level[i]!),
          );
          stored.forEach((i, k) => {
            listings[i] = bytes[k]!;
          });
        });
      }
      fetchAll(treePool, fetching, 'tree', (d, bytes) => {
        listings[slot.get(d)!] = bytes!;
      });
      await treePool.drain();
      const next: string[] = [];
      const childFiles: string[] = [];
      for (const bytes of listings) {
        for (const e of decodeTree(bytes)) {
          if (e.type === 'symlink') continue;
          // decodeTree answers digests in full form already.
          const c = e.digest;
          if (seen.has(c)) continue;
          seen.add(c);
          (e.type === 'dir' ? next : childFiles).push(c);
        }
      }
      if (childFiles.length > 0) {
        const have = await presence.hasMany(childFiles);
        const wanted: string[] = [];
        childFiles.forEach((d, i) => {
          if (have[i]) objectsPresent++;
          else wanted.push(d);
        });
        meter.objectsTotal += wanted.length;
        fetchAll(files, wanted, 'file');
      }
      level = next;
    }
    await files.drain();
    meter.done();
    return { digest: root, objectsDownloaded, bytesDownloaded, objectsPresent };
  } catch (error) {
    controller.abort(error);
    await files.drain().catch(() => {});
    if (options.signal?.aborted) throw options.signal.reason;
    throw error;
  } finally {
    dispose();
  }
}
