import { readFile } from 'node:fs/promises';
import { decodeTree, type Store, type TreeEntry } from '@fsw/tree';
import { linkedController, ProgressMeter, TaskPool, transferConcurrency } from './internal/progress.js';
import { normalizeDigest } from './protocol.js';
import type { PushOptions, PushResult, Remote } from './types.js';

/** Objects up to this size are uploaded from memory; larger ones stream from the store. */
const IN_MEMORY_MAX = 8 * 1024 * 1024;
/** Digests per existence query when the remote has no HasTree. */
const QUERY_BATCH = 50_000;

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

  const filesQueued = new Set<string>();
  const uploadFile = (d: string) => {
    if (filesQueued.has(d)) return;
    filesQueued.add(d);
    meter.objectsTotal++;
    pool.add(async () => {
      // One stat (locate) and a read of the file it found, rather than the store's own lookup again in `get`.
      const found = local.locate ? await local.locate(d) : undefined;
      let sent: number;
      if (found !== undefined && found.size > IN_MEMORY_MAX) {
        meter.bytesTotal += found.size;
        await remote.write(d, () => store.read(d), { kind: 'file', size: found.size, signal });
        sent = found.size;
      } else {
        const bytes =
          found === undefined ? await store.get(d) : await readFile(found.path).catch(() => store.get(d));
        meter.bytesTotal += bytes.length;
        await remote.write(d, bytes, { kind: 'file', size: bytes.length, signal });
        sent = bytes.length;
      }
      objectsUploaded++;
      bytesUploaded += sent;
      meter.objectsDone++;
      meter.bytesDone += sent;
      meter.tick();
    });
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
      for (const d of group ?? []) {
        const { bytes } = trees.get(d)!;
        pool.add(async () => {
          await remote.write(d, bytes, { kind: 'tree', size: bytes.length, signal });
          objectsUploaded++;
          bytesUploaded += bytes.length;
          meter.objectsDone++;
          meter.bytesDone += bytes.length;
          meter.tick();
        });
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
