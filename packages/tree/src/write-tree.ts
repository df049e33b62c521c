import { join } from 'node:path';
import { hashFile } from '@fsw/hash';
import { buildTree, defaultConcurrency, type TreeSink, type WriteTreeProgress } from './internal/build.js';
import { type LocalStore, openStore } from './store.js';
import type { Store, TreeEntry } from './types.js';

export type { WriteTreeProgress } from './internal/build.js';

/** Options of {@link writeTree}. */
export interface WriteTreeOptions {
  /** The store to write objects to. @default openStore() (`FSTREE_CACHE`, else `~/.cache/fstree`) */
  readonly store?: Store;
  /** The gitignore-syntax file at the root of `dir` (full gitignore semantics, `!` included); `''` for none. @default '.fstreeignore' */
  readonly ignoreFile?: string;
  /**
   * Use and update `<dir>/.fstree/index`: files with the same size, mtime, mode and inode as last time are not read
   * again. The index is skipped (not an error) when `dir` is read-only.
   * @default true
   */
  readonly index?: boolean;
  /** Large files hashed and stored at once (and files for a store other than a local one). @default max(8, 2 × CPU count) */
  readonly concurrency?: number;
  /**
   * Worker threads reading, hashing and storing small files with blocking calls in batches; `0` does it on the
   * main thread (in short batches between turns of the event loop). Separately, a tree of more than 8,192 entries
   * (on 2+ CPUs) gets one thread lstat-ing listed paths while the main thread lists folders: `0` never starts it,
   * any other number starts it at once.
   * @default 0 for up to 2,000 files to read, else one per CPU (at most 4)
   */
  readonly workers?: number;
  /** Called (throttled, synchronously) with the counts so far, and once more at the end with `done: true`. */
  readonly onProgress?: (progress: WriteTreeProgress) => void;
  readonly signal?: AbortSignal;
}

function isLocalStore(store: Store): store is LocalStore {
  return typeof (store as Partial<LocalStore>).putFileWithStat === 'function';
}

/** A sink over any {@link Store}; the fast path keeps the stat a {@link LocalStore} takes when it opens a file. */
export function storeSink(store: Store): TreeSink {
  return {
    async putFile(path) {
      if (isLocalStore(store)) {
        const { digest, stat } = await store.putFileWithStat(path);
        return { digest, size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino };
      }
      const { lstat } = await import('node:fs/promises');
      const before = await lstat(path);
      const digest = await store.putFile(path);
      return { digest, size: before.size, mtimeMs: before.mtimeMs, ino: before.ino };
    },
    putTree: (bytes) => store.put(bytes, 'tree'),
    hasFile: (digest) => store.has(digest),
    hasFileSync: isLocalStore(store) ? (digest) => store.hasSync(digest) : undefined,
    batches:
      isLocalStore(store) && !store.verify
        ? { target: { objects: join(store.dir, 'objects'), touchAfterMs: store.touchAfterMs } }
        : undefined,
  };
}

/** A sink that only hashes: nothing is stored. */
export function hashOnlySink(): TreeSink {
  return {
    async putFile(path) {
      const { lstat } = await import('node:fs/promises');
      const before = await lstat(path);
      const result = await hashFile(path, { algorithm: 'blake3' });
      return {
        digest: `blake3:${result.digest}`,
        size: before.size,
        mtimeMs: before.mtimeMs,
        ino: before.ino,
      };
    },
    async putTree(bytes) {
      const { hashBytes } = await import('@fsw/hash');
      return `blake3:${await hashBytes(bytes)}`;
    },
    // Index digests need no object behind them when nothing is stored.
    hasFile: async () => true,
    hasFileSync: () => true,
    batches: { target: undefined },
  };
}

/**
 * Turns a directory into an fstree-compatible Merkle tree: every file is stored as an object, every directory as a
 * tree object, and the root tree's digest `blake3:<hex>` is returned. Files are hashed and stored in parallel;
 * unchanged files are taken from the index without being read. Symlinks are recorded (never followed); sockets,
 * FIFOs and devices are skipped; ignored paths and `.fstree` folders are left out; a directory whose children are
 * all ignored is kept as an empty tree.
 *
 * @throws TreeError E_NOT_FOUND / E_NOT_DIR for a bad `dir`, E_PERMISSION for an unreadable file or folder,
 *   E_INVALID_ARGUMENT for a name that is not valid UTF-8; `signal.reason` when aborted
 */
export async function writeTree(dir: string, options: WriteTreeOptions = {}): Promise<string> {
  const store = options.store ?? openStore();
  return buildTree(dir, {
    sink: storeSink(store),
    ignoreFile: options.ignoreFile ?? '.fstreeignore',
    useIndex: options.index !== false,
    saveIndex: options.index !== false,
    concurrency: options.concurrency ?? defaultConcurrency(),
    onProgress: options.onProgress,
    signal: options.signal,
    workers: options.workers,
    // A store kept inside the tree it stores would feed on itself.
    exclude: store.dir,
  });
}

/** Options of {@link hashTree}. */
export interface HashTreeOptions {
  /** @default '.fstreeignore' */
  readonly ignoreFile?: string;
  /** Reuse digests from `<dir>/.fstree/index` (read only; never written). @default true */
  readonly index?: boolean;
  /** @default max(8, 2 × CPU count) */
  readonly concurrency?: number;
  /** As {@link WriteTreeOptions.workers}. */
  readonly workers?: number;
  readonly signal?: AbortSignal;
  /** Receives every tree object computed, by digest. */
  readonly trees?: Map<string, TreeEntry[]>;
}

/**
 * Computes the root digest `writeTree` would give, storing nothing.
 * @throws TreeError as {@link writeTree}
 */
export async function hashTree(dir: string, options: HashTreeOptions = {}): Promise<string> {
  return hashTreeExcept(dir, options, undefined);
}

/**
 * {@link hashTree}, leaving out the folder `exclude` (a store kept inside `dir`, as writeTree leaves it out).
 * @internal
 */
export async function hashTreeExcept(
  dir: string,
  options: HashTreeOptions,
  exclude: string | undefined,
): Promise<string> {
  return buildTree(dir, {
    sink: hashOnlySink(),
    ignoreFile: options.ignoreFile ?? '.fstreeignore',
    useIndex: options.index !== false,
    saveIndex: false,
    concurrency: options.concurrency ?? defaultConcurrency(),
    signal: options.signal,
    workers: options.workers,
    keepTrees: options.trees,
    exclude,
  });
}
