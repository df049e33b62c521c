import { readFileSync } from 'node:fs';
import { TreeError } from '@fsw/errors';
import pLimit from 'p-limit';
import { decodeTree } from './codec.js';
import { parseDigest } from './digest.js';
import { openStore } from './store.js';
import type { ObjectKind, Store, TreeEntry } from './types.js';

/** Options of {@link readTree}. */
export interface ReadTreeOptions {
  /** @default openStore() */
  readonly store?: Store;
}

/**
 * Reads and parses one tree object from the store.
 * @throws TreeError E_MISSING_OBJECT when the store lacks it, E_CORRUPT when it is not a valid tree object,
 *   E_INVALID_ARGUMENT for a digest that does not parse
 */
export async function readTree(digest: string, options: ReadTreeOptions = {}): Promise<TreeEntry[]> {
  const store = options.store ?? openStore();
  const normal = parseDigest(digest);
  return readTreeAt(store, normal, normal, '');
}

/**
 * Reads tree `digest`, found at `path` (or `path/`) below tree `root` (`''`: the root itself), with errors naming
 * that path.
 * @internal
 */
export async function readTreeAt(
  store: Store,
  digest: string,
  root: string,
  path: string,
): Promise<TreeEntry[]> {
  try {
    return parsed(digest, await store.get(digest));
  } catch (error) {
    throw await located(error, store, digest, root, path);
  }
}

/** One line of {@link lsTree}: an entry with its path below the listed tree. */
export interface LsTreeEntry extends TreeEntry {
  /** `/`-separated path relative to the listed tree (the name itself at the top level). */
  readonly path: string;
}

/** Options of {@link lsTree}. */
export interface LsTreeOptions extends ReadTreeOptions {
  /** List subtrees too, depth-first; each directory comes before its children. @default false */
  readonly recursive?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Lists a tree's entries, optionally recursively, in fstree order (names by bytes, depth-first).
 * @throws TreeError as {@link readTree}, for the tree or any subtree
 */
export async function lsTree(digest: string, options: LsTreeOptions = {}): Promise<LsTreeEntry[]> {
  const store = options.store ?? openStore();
  const out: LsTreeEntry[] = [];
  const cache = new Map<string, TreeEntry[]>();
  const visit = async (treeDigest: string, prefix: string): Promise<void> => {
    options.signal?.throwIfAborted();
    let entries = cache.get(treeDigest);
    if (entries === undefined) {
      entries = await readTreeAt(store, treeDigest, root, prefix);
      cache.set(treeDigest, entries);
    }
    for (const entry of entries) {
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      out.push({ ...entry, path });
      if (options.recursive === true && entry.type === 'dir') await visit(entry.digest, path);
    }
  };
  const root = parseDigest(digest);
  await visit(root, '');
  return out;
}

/**
 * Reads a tree and every subtree below it (each distinct subtree once), checking every object parses before
 * anything is done with it.
 * @internal
 */
export async function loadAllTrees(
  digest: string,
  store: Store,
  signal?: AbortSignal,
): Promise<Map<string, TreeEntry[]>> {
  const trees = new Map<string, TreeEntry[]>();
  const limit = pLimit(32);
  const local = syncReader(store);
  const root = parseDigest(digest);
  let level = [root];
  while (level.length > 0) {
    signal?.throwIfAborted();
    const fresh = [...new Set(level)].filter((d) => !trees.has(d));
    const loaded: (readonly [string, TreeEntry[]])[] = [];
    const slow: string[] = [];
    if (local === undefined) slow.push(...fresh);
    else {
      // Blocking reads in slices of a few milliseconds: a large tree has thousands of subtrees, and an
      // asynchronous get costs a thread-pool round trip for each of its calls.
      let start = performance.now();
      for (const d of fresh) {
        if (performance.now() - start >= SLICE_MS) {
          await new Promise((resolveTurn) => setImmediate(resolveTurn));
          signal?.throwIfAborted();
          start = performance.now();
        }
        const bytes = local(d);
        if (bytes === undefined) slow.push(d);
        else {
          let entries: TreeEntry[];
          try {
            entries = parsed(d, bytes);
          } catch (error) {
            throw await located(error, store, d, root, pathOf(trees, root, d));
          }
          loaded.push([d, entries]);
        }
      }
    }
    // Other stores, and anything the blocking path did not find (its error comes from `get`). On failure, the
    // tree's path is looked for in the trees loaded so far (its parent's level is complete).
    loaded.push(
      ...(await Promise.all(
        slow.map((d) =>
          limit(async () => {
            try {
              return [d, parsed(d, await store.get(d))] as const;
            } catch (error) {
              throw await located(error, store, d, root, pathOf(trees, root, d));
            }
          }),
        ),
      )),
    );
    level = [];
    for (const [d, entries] of loaded) {
      trees.set(d, entries);
      for (const e of entries) if (e.type === 'dir') level.push(e.digest);
    }
  }
  return trees;
}

const SLICE_MS = 8;

/** The synchronous extras of a `LocalStore` (other stores lack them). */
interface SyncStore extends Store {
  readonly verify?: boolean;
  locate?(digest: string): Promise<{ readonly path: string; readonly kind: ObjectKind } | undefined>;
  locateSync?(digest: string): { readonly path: string } | undefined;
}

/**
 * A blocking reader of stored objects for a local store that does not re-hash on read (`locateSync` also marks the
 * object used, as `get` does); `undefined` for other stores. The reader answers `undefined` when it cannot read.
 */
function syncReader(store: Store): ((digest: string) => Uint8Array | undefined) | undefined {
  const sync = store as SyncStore;
  if (sync.locateSync === undefined || sync.verify !== false) return undefined;
  const locate = sync.locateSync.bind(sync);
  return (digest) => {
    try {
      const found = locate(digest);
      return found === undefined ? undefined : readFileSync(found.path);
    } catch {
      return undefined;
    }
  };
}

/** Errors of {@link parsed}: the bytes read are no tree object (rather than a store or read failure). */
const undecodable = new WeakSet<object>();

/** Decodes a tree object as {@link readTree} does. */
function parsed(digest: string, bytes: Uint8Array): TreeEntry[] {
  try {
    return decodeTree(bytes);
  } catch (error) {
    if (TreeError.is(error)) {
      const corrupt = new TreeError('E_CORRUPT', `${digest}: ${error.message}`, { cause: error });
      undecodable.add(corrupt);
      throw corrupt;
    }
    throw error;
  }
}

/**
 * The `/`-separated path at which tree `digest` is first found below `root` in `trees` (breadth-first: the
 * shortest), `''` if nowhere. Only called on failure: the loading itself keeps no paths.
 */
function pathOf(trees: ReadonlyMap<string, readonly TreeEntry[]>, root: string, digest: string): string {
  if (digest === root) return '';
  const seen = new Set([root]);
  let level: (readonly [string, string])[] = [[root, '']];
  while (level.length > 0) {
    const next: (readonly [string, string])[] = [];
    for (const [d, prefix] of level) {
      for (const e of trees.get(d) ?? []) {
        if (e.type !== 'dir' || seen.has(e.digest)) continue;
        const path = prefix === '' ? e.name : `${prefix}/${e.name}`;
        if (e.digest === digest) return path;
        seen.add(e.digest);
        next.push([e.digest, path]);
      }
    }
    level = next;
  }
  return '';
}

/** The file object stored under `digest` (a local store keeps `.file` and `.tree` apart), if that is what it is. */
async function fileObjectPath(store: Store, digest: string): Promise<string | undefined> {
  const locate = (store as SyncStore).locate;
  if (locate === undefined) return undefined;
  try {
    const found = await locate.call(store, digest);
    return found?.kind === 'file' ? found.path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A failure to read tree `digest`, found at `path` below tree `root`, as a TreeError naming that path (when known)
 * and the tree; a file object read as a tree is said to be one.
 */
async function located(
  error: unknown,
  store: Store,
  digest: string,
  root: string,
  path: string,
): Promise<unknown> {
  if (!TreeError.is(error)) return error;
  const isRoot = digest === root;
  // Callers walking with a prefix pass it as is (`dir/`): the slash is dropped here, on failure only.
  const rel = path.endsWith('/') ? path.slice(0, -1) : path;
  const at = isRoot ? '' : rel === '' ? ` of tree ${root}` : ` (${rel}) of tree ${root}`;
  if (undecodable.has(error)) {
    const file = await fileObjectPath(store, digest);
    if (file !== undefined) {
      // Named by the user: a wrong argument. Named by a tree: that tree is invalid.
      return new TreeError(
        isRoot ? 'E_INVALID_ARGUMENT' : 'E_CORRUPT',
        `${digest}${at} is a file object, not a tree`,
        { path: file, cause: error },
      );
    }
  }
  if (isRoot) return error;
  const options = error.path === undefined ? { cause: error } : { path: error.path, cause: error };
  if (error.code === 'E_MISSING_OBJECT') {
    return new TreeError('E_MISSING_OBJECT', `tree ${digest}${at} is not in the store ${store.dir}`, options);
  }
  const why = undecodable.has(error) && TreeError.is(error.cause) ? error.cause.message : error.message;
  return new TreeError(error.code, `tree ${digest}${at}: ${why}`, options);
}
