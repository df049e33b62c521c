import { RemoteError, TreeError } from '@fsw/errors';
import type { Digest } from './digest.js';
import { parseDigest } from './digest.js';
import type { ObjectSet } from './objects.js';
import { treeEntries } from './tree-codec.js';

/** One batch of what a tree walk found missing. */
export interface MissingBatch {
  /** Trees the store lacks, as bare hex (what the reference server sends). */
  readonly missingTrees: string[];
  /** File objects the store lacks, as full digests. */
  readonly missingObjects: string[];
}

/** Options of {@link findMissing}. */
export interface FindMissingOptions {
  /** Receives each batch; the walk waits for it (backpressure). Not called when nothing is missing. */
  readonly emit?: (batch: MissingBatch) => Promise<void> | void;
  /** Receives every digest the walk looked at (present or missing), before the batch naming them is emitted. */
  readonly onSeen?: (digests: readonly string[]) => void;
  /** Entries per emitted batch. @default 1024 */
  readonly batchSize?: number;
  readonly signal?: AbortSignal;
}

const TREE_CONCURRENCY = 16;
const LOOKUP_CONCURRENCY = 256;

/**
 * Walks the trees below `roots` in the store, breadth-first, and reports what is missing: trees the store lacks
 * (their children cannot be inspected until they are uploaded) and file objects it lacks. Every object looked at
 * counts as used for LRU purposes. Resolves to the number of missing digests.
 * @throws RemoteError E_INVALID_ARGUMENT when an object named as a directory is not a tree
 */
export async function findMissing(
  objects: ObjectSet,
  roots: readonly Digest[],
  options: FindMissingOptions = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 1024;
  const seenTrees = new Set<string>();
  const seenFiles = new Set<string>();
  let missingTrees: string[] = [];
  let missingObjects: string[] = [];
  let seen: string[] = [];
  let total = 0;
  let flushing: Promise<void> = Promise.resolve();

  const flush = async (force: boolean): Promise<void> => {
    if (!force && missingTrees.length + missingObjects.length < batchSize) return;
    if (seen.length > 0) options.onSeen?.(seen);
    seen = [];
    if (missingTrees.length + missingObjects.length === 0) return;
    const batch = { missingTrees, missingObjects };
    missingTrees = [];
    missingObjects = [];
    // Batches go out one at a time, in order, each waiting for the consumer.
    const previous = flushing;
    flushing = previous.then(() => options.emit?.(batch));
    await flushing;
  };

  const visitTree = async (tree: Digest): Promise<Digest[]> => {
    options.signal?.throwIfAborted();
    const bytes = await objects.readAll(tree);
    seen.push(tree.full);
    if (!bytes) {
      missingTrees.push(tree.hex);
      total++;
      await flush(false);
      return [];
    }
    let entries: ReturnType<typeof treeEntries>;
    try {
      entries = treeEntries(bytes);
    } catch (cause) {
      if (!TreeError.is(cause)) throw cause;
      throw new RemoteError('E_INVALID_ARGUMENT', `${tree.full} is not a tree object: ${cause.message}`, {
        cause,
      });
    }
    const subtrees: Digest[] = [];
    const files: Digest[] = [];
    for (const entry of entries) {
      if (entry.type === 'symlink') continue;
      const digest = parseDigest(entry.digest);
      if (!digest) continue;
      if (entry.type === 'dir') {
        if (!seenTrees.has(digest.full)) {
          seenTrees.add(digest.full);
          subtrees.push(digest);
        }
      } else if (!seenFiles.has(digest.full)) {
        seenFiles.add(digest.full);
        files.push(digest);
      }
    }
    for (let i = 0; i < files.length; i += LOOKUP_CONCURRENCY) {
      const slice = files.slice(i, i + LOOKUP_CONCURRENCY);
      const present = await Promise.all(slice.map((f) => objects.has(f)));
      slice.forEach((f, j) => {
        seen.push(f.full);
        if (!present[j]) {
          missingObjects.push(f.full);
          total++;
        }
      });
      await flush(false);
    }
    return subtrees;
  };

  let level: Digest[] = [];
  for (const root of roots) {
    if (seenTrees.has(root.full)) continue;
    seenTrees.add(root.full);
    level.push(root);
  }
  while (level.length > 0) {
    const next: Digest[] = [];
    let index = 0;
    const worker = async () => {
      while (index < level.length) {
        const tree = level[index++] as Digest;
        next.push(...(await visitTree(tree)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(TREE_CONCURRENCY, level.length) }, worker));
    level = next;
  }
  await flush(true);
  await flushing;
  return total;
}
