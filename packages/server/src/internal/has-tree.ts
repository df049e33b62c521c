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
  /**
   * Receives every digest the walk looked at (present or missing), and the complete trees it did not need to open,
   * before the batch naming them is emitted.
   */
  readonly onSeen?: (digests: readonly string[], completeTrees: readonly string[]) => void;
  /** Entries per emitted batch. @default 1024 */
  readonly batchSize?: number;
  readonly signal?: AbortSignal;
}

const TREE_CONCURRENCY = 16;
const LOOKUP_CONCURRENCY = 256;

/** A digest from a decoded tree: already canonical (`blake3:<lowercase hex>`), so no need to parse it again. */
function canonical(full: string): Digest | undefined {
  const colon = full.indexOf(':');
  if (colon <= 0) return parseDigest(full);
  return { algorithm: full.slice(0, colon) as Digest['algorithm'], hex: full.slice(colon + 1), full };
}

/** What the walk learnt about one tree it opened, to tell afterwards which trees are complete. */
interface Visited {
  /** The tree object itself is missing. */
  missing: boolean;
  readonly files: string[];
  readonly subtrees: string[];
}

/**
 * Walks the trees below `roots` in the store, breadth-first, and reports what is missing: trees the store lacks
 * (their children cannot be inspected until they are uploaded) and file objects it lacks. Every object looked at
 * counts as used for LRU purposes. Trees found complete are remembered by the store, so that the next walk (a push
 * with nothing or little changed) skips them without reading them. Resolves to the number of missing digests.
 * @throws RemoteError E_INVALID_ARGUMENT when an object named as a directory is not a tree
 */
export async function findMissing(
  objects: ObjectSet,
  roots: readonly Digest[],
  options: FindMissingOptions = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 1024;
  const removalsAtStart = objects.removals;
  const seenTrees = new Set<string>();
  const seenFiles = new Set<string>();
  const visited = new Map<string, Visited>();
  const missingFiles = new Set<string>();
  let missingTrees: string[] = [];
  let missingObjects: string[] = [];
  let seen: string[] = [];
  let skipped: string[] = [];
  let total = 0;
  let flushing: Promise<void> = Promise.resolve();

  const flush = async (force: boolean): Promise<void> => {
    if (!force && missingTrees.length + missingObjects.length < batchSize) return;
    if (seen.length > 0 || skipped.length > 0) options.onSeen?.(seen, skipped);
    seen = [];
    skipped = [];
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
    const info: Visited = { missing: false, files: [], subtrees: [] };
    visited.set(tree.full, info);
    if (!bytes) {
      info.missing = true;
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
      const digest = canonical(entry.digest);
      if (!digest) continue;
      if (entry.type === 'dir') {
        info.subtrees.push(digest.full);
        if (seenTrees.has(digest.full)) continue;
        seenTrees.add(digest.full);
        if (objects.isCompleteTree(digest.full)) skipped.push(digest.full);
        else subtrees.push(digest);
      } else {
        info.files.push(digest.full);
        if (seenFiles.has(digest.full)) continue;
        seenFiles.add(digest.full);
        files.push(digest);
      }
    }
    // The index answers almost every lookup at once; only objects it cannot vouch for (during the startup scan) need
    // the disk.
    const unsure: Digest[] = [];
    const record = (f: Digest, present: boolean) => {
      seen.push(f.full);
      if (!present) {
        missingFiles.add(f.full);
        missingObjects.push(f.full);
        total++;
      }
    };
    for (const f of files) {
      const present = objects.hasIndexed(f);
      if (present === undefined) unsure.push(f);
      else record(f, present);
      if (missingObjects.length >= batchSize) await flush(false);
    }
    for (let i = 0; i < unsure.length; i += LOOKUP_CONCURRENCY) {
      const slice = unsure.slice(i, i + LOOKUP_CONCURRENCY);
      const present = await Promise.all(slice.map((f) => objects.has(f)));
      slice.forEach((f, j) => {
        record(f, present[j] === true);
      });
      await flush(false);
    }
    await flush(false);
    return subtrees;
  };

  let level: Digest[] = [];
  for (const root of roots) {
    if (seenTrees.has(root.full)) continue;
    seenTrees.add(root.full);
    if (objects.isCompleteTree(root.full)) skipped.push(root.full);
    else level.push(root);
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
  objects.markComplete(completeTrees(visited, missingFiles, objects), removalsAtStart);
  return total;
}

/** The opened trees with nothing missing anywhere below them. */
function completeTrees(
  visited: Map<string, Visited>,
  missingFiles: Set<string>,
  objects: ObjectSet,
): string[] {
  const memo = new Map<string, boolean>();
  const isComplete = (full: string): boolean => {
    const known = memo.get(full);
    if (known !== undefined) return known;
    const info = visited.get(full);
    // Not opened by this walk: complete only if an earlier walk said so.
    if (!info) return objects.isCompleteTree(full);
    memo.set(full, false); // a cycle (impossible for content-addressed trees) counts as incomplete
    // A file named by several trees is looked up once: its absence counts against each of them.
    const complete =
      !info.missing && !info.files.some((f) => missingFiles.has(f)) && info.subtrees.every(isComplete);
    memo.set(full, complete);
    return complete;
  };
  return [...visited.keys()].filter(isComplete);
}
