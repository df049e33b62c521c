import { parseDigest } from './digest.js';
import { readTreeAt } from './read-tree.js';
import { openStore } from './store.js';
import type { Store, TreeEntry } from './types.js';
import { hashTreeExcept } from './write-tree.js';

/** What differs between two trees (or a folder and a tree), as sorted `/`-separated relative paths. */
export interface TreeDiff {
  /** In the second tree only (every path below an added folder too). */
  readonly added: string[];
  /** In the first tree only (every path below a removed folder too). */
  readonly removed: string[];
  /** Same type on both sides, different content, mode or symlink target (a folder only for its own mode). */
  readonly modified: string[];
  /** A file, folder or symlink on one side and another type on the other (what was below is added/removed). */
  readonly typeChanged: string[];
}

/** Options of {@link diffTrees}. */
export interface DiffTreesOptions {
  /** @default openStore() */
  readonly store?: Store;
  readonly signal?: AbortSignal;
}

/** Reads a tree found at `prefix` (`''` or `path/`), for errors naming that path. */
type Loader = (digest: string, prefix: string) => Promise<TreeEntry[]>;

/**
 * Compares two trees by walking both at once; identical subtrees (same digest) are skipped unread.
 * @throws TreeError E_MISSING_OBJECT / E_CORRUPT for a tree object that is absent or invalid
 */
export async function diffTrees(a: string, b: string, options: DiffTreesOptions = {}): Promise<TreeDiff> {
  const store = options.store ?? openStore();
  const rootA = parseDigest(a);
  const rootB = parseDigest(b);
  const loadA: Loader = (d, prefix) => readTreeAt(store, d, rootA, prefix);
  const loadB: Loader = (d, prefix) => readTreeAt(store, d, rootB, prefix);
  return diffWith(rootA, rootB, loadA, loadB, options.signal);
}

/** Options of {@link verifyTree}. */
export interface VerifyTreeOptions extends DiffTreesOptions {
  /** @default '.fstreeignore' */
  readonly ignoreFile?: string;
  /** Trust `<dir>/.fstree/index` for unchanged files instead of reading them. @default false */
  readonly index?: boolean;
  /** @default max(8, 2 × CPU count) */
  readonly concurrency?: number;
}

/** What {@link verifyTree} found. */
export interface VerifyTreeResult extends TreeDiff {
  /** The folder's own root digest now. */
  readonly digest: string;
  /** True when the folder equals the tree. */
  readonly equal: boolean;
}

/**
 * Compares a folder with a tree: hashes the folder as `writeTree` would (storing nothing) and diffs the result
 * against the tree in the store. `added` are paths only in the folder, `removed` only in the tree.
 * @throws TreeError as `writeTree` for the folder, and as {@link diffTrees} for the tree
 */
export async function verifyTree(
  dir: string,
  digest: string,
  options: VerifyTreeOptions = {},
): Promise<VerifyTreeResult> {
  const store = options.store ?? openStore();
  const trees = new Map<string, TreeEntry[]>();
  // As writeTree and checkout do, a store kept inside the folder is left out.
  const actual = await hashTreeExcept(
    dir,
    {
      trees,
      index: options.index === true,
      ...(options.ignoreFile === undefined ? {} : { ignoreFile: options.ignoreFile }),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
    store.dir,
  );
  const root = parseDigest(digest);
  const fromFolder: Loader = async (d, prefix) => trees.get(d) ?? readTreeAt(store, d, actual, prefix);
  const fromStore: Loader = (d, prefix) => readTreeAt(store, d, root, prefix);
  const diff = await diffWith(root, actual, fromStore, fromFolder, options.signal);
  return { ...diff, digest: actual, equal: actual === root };
}

async function diffWith(
  a: string,
  b: string,
  loadA: Loader,
  loadB: Loader,
  signal: AbortSignal | undefined,
): Promise<TreeDiff> {
  const out: TreeDiff = { added: [], removed: [], modified: [], typeChanged: [] };
  const listAll = async (digest: string, load: Loader, prefix: string, into: string[]) => {
    for (const e of await load(digest, prefix)) {
      const path = `${prefix}${e.name}`;
      into.push(path);
      if (e.type === 'dir') await listAll(e.digest, load, `${path}/`, into);
    }
  };
  const visit = async (da: string, db: string, prefix: string): Promise<void> => {
    signal?.throwIfAborted();
    if (da === db) return;
    const [ea, eb] = await Promise.all([loadA(da, prefix), loadB(db, prefix)]);
    const byName = new Map(eb.map((e) => [e.name, e]));
    for (const x of ea) {
      const path = `${prefix}${x.name}`;
      const y = byName.get(x.name);
      byName.delete(x.name);
      if (y === undefined) {
        out.removed.push(path);
        if (x.type === 'dir') await listAll(x.digest, loadA, `${path}/`, out.removed);
      } else if (x.type !== y.type) {
        out.typeChanged.push(path);
        if (x.type === 'dir') await listAll(x.digest, loadA, `${path}/`, out.removed);
        if (y.type === 'dir') await listAll(y.digest, loadB, `${path}/`, out.added);
      } else if (x.type === 'dir') {
        if (x.mode !== y.mode) out.modified.push(path);
        await visit(x.digest, y.digest, `${path}/`);
      } else if (x.digest !== y.digest || x.mode !== y.mode || x.target !== y.target) {
        out.modified.push(path);
      }
    }
    for (const y of byName.values()) {
      const path = `${prefix}${y.name}`;
      out.added.push(path);
      if (y.type === 'dir') await listAll(y.digest, loadB, `${path}/`, out.added);
    }
  };
  await visit(a, b, '');
  for (const list of [out.added, out.removed, out.modified, out.typeChanged]) list.sort();
  return out;
}
