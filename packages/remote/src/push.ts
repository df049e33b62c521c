import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { decodeTree, type Store, type TreeEntry } from '@fsw/tree';
import { linkedController, ProgressMeter, TaskPool, transferConcurrency } from './internal/progress.js';
import { normalizeDigest } from './protocol.js';
import type { BatchObject, PushOptions, PushResult, Remote } from './types.js';

/** Objects up to this size are uploaded from memory; larger ones stream from the store. */
const IN_MEMORY_MAX = 8 * 1024 * 1024;
/** Digests per existence query when the remote has no HasTree. */
const QUERY_BATCH = 50_000;

/** Objects up to this size go through {@link Remote.writeMany} in batches, read with synchronous calls. */
const BATCH_OBJECT_MAX = 1024 * 1024;
/** At most this many objects, or about this many bytes, per `writeMany` call. */
const BATCH_OBJECTS = 256;
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * The bytes of a stored object of at most {@link BATCH_OBJECT_MAX} bytes, read with synchronous calls (a few µs, no
 * thread-pool round trip); undefined when it is larger or not where `path` says (the caller then takes the store's
 * own, asynchronous, way, which also reports a missing object properly).
 */
function readSmallSync(path: string): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    if (size > BATCH_OBJECT_MAX) return undefined;
    const bytes = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const n = readSync(fd, bytes, offset, size - offset, offset);
      if (n === 0) return undefined;
      offset += n;
    }
    return bytes;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Splits `objects` into batches of at most {@link BATCH_OBJECTS} objects and about {@link BATCH_BYTES} bytes. */
function batchesOf<T extends { bytes: Uint8Array }>(objects: readonly T[]): T[][] {
  const out: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const o of objects) {
    if (batch.length > 0 && (batch.length >= BATCH_OBJECTS || bytes + o.bytes.length > BATCH_BYTES)) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(o);
    bytes += o.bytes.length;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/** Local tree objects read at once. */
const READ_CONCURRENCY = 32;

/** `Promise.all(items.map(fn))` with at most `limit` calls running. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface LocatingStore extends Store {
  locate?(digest: string): Promise<{ readonly path: string; readonly size: number } | undefined>;
}

/**
 * Uploads the tree `digest` and everything below it from `store` to `remote`, sending only what the remote lacks.
 *
 * On gRPC, `HasTree` finds what is missing (one round trip per level of trees the remote lacks); elsewhere the local
 * tree is walked and the remote asked about every object in a few batch queries (HTTP's `POST /objects?missing`,
 * else one `HEAD` per object). Files are uploaded in parallel first, then the trees, children before the trees that
 * name them: a remote never holds a tree whose objects are missing, and a push interrupted and run again uploads only
 * what is still missing.
 *
 * @throws TreeError E_MISSING_OBJECT when the local store lacks an object of the tree, E_CORRUPT for a malformed tree
 * @throws RemoteError E_UNAVAILABLE, E_UNAUTHENTICATED, E_TIMEOUT, E_DIGEST_MISMATCH (the remote refused bytes), E_TOO_LARGE
 */
export async function push(
  store: Store,
  remote: Remote,
  digest: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const root = normalizeDigest(digest);
  options.signal?.throwIfAborted();
  const concurrency = transferConcurrency('push', options.concurrency);
  const meter = new ProgressMeter(options.onProgress);
  const { controller, dispose } = linkedController(options.signal);
  const pool = new TaskPool(concurrency, controller);
  const signal = controller.signal;
  const local = store as LocatingStore;
  let queries = 0;
  let objectsUploaded = 0;
  let bytesUploaded = 0;

  const counted = (objects: number, bytes: number) => {
    objectsUploaded += objects;
    bytesUploaded += bytes;
    meter.objectsDone += objects;
    meter.bytesDone += bytes;
    meter.tick();
  };

  const sendBatch = async (batch: readonly BatchObject[]) => {
    await remote.writeMany!(batch, { signal });
    counted(
      batch.length,
      batch.reduce((n, o) => n + o.bytes.length, 0),
    );
  };

  /** Uploads one file object on its own (streamed from the store when large). */
  const uploadOne = async (d: string) => {
    // One stat (locate) and a read of the file it found, rather than the store's own lookup again in `get`.
    const found = local.locate ? await local.locate(d) : undefined;
    if (found !== undefined && found.size > IN_MEMORY_MAX) {
      meter.bytesTotal += found.size;
      await remote.write(d, () => store.read(d), { kind: 'file', size: found.size, signal });
      counted(1, found.size);
      return;
    }
    const bytes =
      found === undefined ? await store.get(d) : await readFile(found.path).catch(() => store.get(d));
    meter.bytesTotal += bytes.length;
    await remote.write(d, bytes, { kind: 'file', size: bytes.length, signal });
    counted(1, bytes.length);
  };

  /** Uploads small file objects through `writeMany`, read synchronously a batch at a time; others one by one. */
  const uploadBatch = async (digests: readonly string[]) => {
    let batch: BatchObject[] = [];
    let bytes = 0;
    for (const d of digests) {
      signal.throwIfAborted();
      const small = local.locate ? readSmallSync(store.path(d, 'file')) : undefined;
      if (small === undefined) {
        await uploadOne(d);
        continue;
      }
      meter.bytesTotal += small.length;
      batch.push({ digest: d, bytes: small, kind: 'file' });
      bytes += small.length;
      if (batch.length >= BATCH_OBJECTS || bytes >= BATCH_BYTES) {
        await sendBatch(batch);
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) await sendBatch(batch);
  };

  // Known after the first answer of the remote, before anything is uploaded.
  const batching = () => remote.batchWrites === true && remote.writeMany !== undefined;
  const filesQueued = new Set<string>();
  let pendingFiles: string[] = [];
  const flushFiles = () => {
    if (pendingFiles.length === 0) return;
    const list = pendingFiles;
    pendingFiles = [];
    pool.add(() => uploadBatch(list));
  };
  const uploadFile = (d: string) => {
    if (filesQueued.has(d)) return;
    filesQueued.add(d);
    meter.objectsTotal++;
    if (!batching()) {
      pool.add(() => uploadOne(d));
      return;
    }
    pendingFiles.push(d);
    if (pendingFiles.length >= BATCH_OBJECTS) flushFiles();
  };

  // Trees to upload, with their bytes and the child trees they name.
  const trees = new Map<string, { bytes: Uint8Array; children: string[] }>();
  const loadTree = async (d: string): Promise<TreeEntry[]> => {
    const bytes = await store.get(d);
    const entries = decodeTree(bytes);
    trees.set(d, {
      bytes,
      children: entries.filter((e) => e.type === 'dir').map((e) => normalizeDigest(e.digest)),
    });
    meter.objectsTotal++;
    meter.bytesTotal += bytes.length;
    return entries;
  };

  const loadTrees = (digests: readonly string[]) => mapLimit(digests, READ_CONCURRENCY, loadTree);

  try {
    if (remote.protocol === 'grpc') {
      // HasTree on the root; for each tree the remote lacks, read it locally and ask about its children.
      queries++;
      let answer = await remote.missing([root], { signal });
      for (;;) {
        pool.check();
        for (const d of answer.objects) uploadFile(d);
        const lacking = answer.trees.filter((d) => !trees.has(d));
        if (lacking.length === 0) break;
        const childTrees = new Set<string>();
        const childFiles = new Set<string>();
        for (const entries of await loadTrees(lacking)) {
          for (const e of entries) {
            if (e.type === 'dir') childTrees.add(normalizeDigest(e.digest));
            else if (e.type === 'file') childFiles.add(normalizeDigest(e.digest));
          }
        }
        meter.tick();
        const treeList = [...childTrees].filter((d) => !trees.has(d));
        const fileList = [...childFiles].filter((d) => !filesQueued.has(d));
        queries += (treeList.length > 0 ? 1 : 0) + (fileList.length > 0 ? 1 : 0);
        const [sub, present] = await Promise.all([
          treeList.length > 0 ? remote.missing(treeList, { signal }) : { trees: [], objects: [] },
          fileList.length > 0 ? remote.hasObjects(fileList, { signal }) : [],
        ]);
        fileList.forEach((d, i) => {
          if (!present[i]) uploadFile(d);
        });
        answer = sub;
      }
    } else {
      // No HasTree: walk the local tree, then ask about every object in a few batch queries.
      const allTrees: string[] = [];
      const allFiles = new Set<string>();
      let level = [root];
      const seen = new Set(level);
      while (level.length > 0) {
        const next: string[] = [];
        allTrees.push(...level);
        const listings = await mapLimit(level, READ_CONCURRENCY, async (d) => decodeTree(await store.get(d)));
        for (const entries of listings) {
          for (const e of entries) {
            if (e.type === 'symlink') continue;
            const c = normalizeDigest(e.digest);
            if (seen.has(c)) continue;
            seen.add(c);
            if (e.type === 'dir') next.push(c);
            else allFiles.add(c);
          }
        }
        signal.throwIfAborted();
        level = next;
      }
      const everything = [...allTrees, ...allFiles];
      const present: boolean[] = [];
      for (let i = 0; i < everything.length; i += QUERY_BATCH) {
        queries++;
        present.push(...(await remote.hasObjects(everything.slice(i, i + QUERY_BATCH), { signal })));
      }
      everything.forEach((d, i) => {
        if (present[i]) return;
        if (allFiles.has(d)) uploadFile(d);
      });
      await loadTrees(allTrees.filter((_, i) => !present[i]));
    }
    flushFiles();
    meter.phase = 'transfer';
    meter.tick(true);
    await pool.drain();

    // Trees by height: a tree goes up only once every tree it names is there.
    const height = new Map<string, number>();
    const heightOf = (d: string): number => {
      const known = height.get(d);
      if (known !== undefined) return known;
      const node = trees.get(d);
      let h = 0;
      for (const c of node?.children ?? []) if (trees.has(c)) h = Math.max(h, heightOf(c) + 1);
      height.set(d, h);
      return h;
    };
    const byHeight: string[][] = [];
    for (const d of trees.keys()) {
      const h = heightOf(d);
      const group = byHeight[h] ?? [];
      group.push(d);
      byHeight[h] = group;
    }
    for (const group of byHeight) {
      const objects = (group ?? []).map((d) => ({
        digest: d,
        bytes: trees.get(d)!.bytes,
        kind: 'tree' as const,
      }));
      if (batching()) {
        for (const batch of batchesOf(objects)) {
          pool.add(() => sendBatch(batch));
        }
      } else {
        for (const o of objects) {
          pool.add(async () => {
            await remote.write(o.digest, o.bytes, { kind: 'tree', size: o.bytes.length, signal });
            counted(1, o.bytes.length);
          });
        }
      }
      await pool.drain();
    }
    meter.done();
    return { digest: root, objectsUploaded, bytesUploaded, queries };
  } catch (error) {
    controller.abort(error);
    await pool.drain().catch(() => {});
    if (options.signal?.aborted) throw options.signal.reason;
    throw error;
  } finally {
    dispose();
  }
}
