import type { Readable } from 'node:stream';
import type { TreeError } from '@fsw/errors';

/** Kinds of tree entries (sockets, FIFOs and devices are never part of a tree). */
export type TreeEntryType = 'file' | 'dir' | 'symlink';

/** One child in a tree object, as fstree encodes it. */
export interface TreeEntry {
  /** Base name: non-empty, not `.`/`..`, no `/` or NUL. */
  readonly name: string;
  /** `blake3:<hex>` of the child object; `''` for a symlink. */
  readonly digest: string;
  readonly type: TreeEntryType;
  /** Permission bits (the low 12 bits of the mode). */
  readonly mode: number;
  /** The link text, for a symlink. */
  readonly target?: string;
}

/** Whether an object is a file's bytes or a serialised tree: it picks the `.file`/`.tree` suffix in the store. */
export type ObjectKind = 'file' | 'tree';

/** One object given to `Store.putManyVerified`. */
export interface VerifiedObject {
  /** The digest the bytes must hash to (any form {@link splitDigest} accepts; `sha1:` is verified with SHA-1). */
  readonly digest: string;
  readonly bytes: Uint8Array;
  /** @default 'file' */
  readonly kind?: ObjectKind;
}

/** Options of `Store.putManyVerified`. */
export interface PutManyOptions {
  /**
   * Called for an object that cannot be stored: `E_CORRUPT` when its bytes do not match its digest (nothing is
   * stored for it), `E_INVALID_ARGUMENT` for a digest that does not parse, or a file-system error from writing it.
   * `'skip'` goes on with the next object (counted in `skipped`); `'throw'` rejects with that error, leaving the
   * objects before it stored and the ones after it untouched.
   * @default () => 'throw'
   */
  readonly onError?: (error: TreeError, object: VerifiedObject, index: number) => 'skip' | 'throw';
  /** Checked between slices; aborting rejects with `signal.reason` (objects already written stay stored). */
  readonly signal?: AbortSignal;
}

/** What `Store.putManyVerified` did. */
export interface PutManyResult {
  /** Objects written into the store. */
  readonly written: number;
  /** Objects the store already had (their "last used" mark refreshed, as `put` does). */
  readonly present: number;
  /** Objects that failed and that `onError` skipped. */
  readonly skipped: number;
}

/** The content-addressed object store (fstree's cache layout). The server and the remotes use the same store. */
export interface Store {
  /** The store's root directory. */
  readonly dir: string;
  /** Whether the object is stored (under either suffix). @throws TreeError E_INVALID_ARGUMENT for a bad digest */
  has(digest: string): Promise<boolean>;
  /** `has` for many digests, answers in the same order. */
  hasMany(digests: readonly string[]): Promise<boolean[]>;
  /** The object's bytes. @throws TreeError E_MISSING_OBJECT */
  get(digest: string): Promise<Uint8Array>;
  /** A stream of the object's bytes. @throws TreeError E_MISSING_OBJECT */
  read(digest: string): Promise<Readable>;
  /** Stores bytes (atomically) and returns their digest `blake3:<hex>`. @default kind 'file' */
  put(bytes: Uint8Array, kind?: ObjectKind): Promise<string>;
  /** Stores bytes that must hash to `digest`. @throws TreeError E_CORRUPT on a mismatch (nothing stored) */
  putVerified(digest: string, bytes: Uint8Array, kind?: ObjectKind): Promise<void>;
  /**
   * Optional: `putVerified` for many small objects in one call, far cheaper per object (stores from `openStore` have
   * it; see `LocalStore.putManyVerified`).
   */
  putManyVerified?(objects: readonly VerifiedObject[], options?: PutManyOptions): Promise<PutManyResult>;
  /** Stores a file's content, returns its digest. */
  putFile(path: string): Promise<string>;
  /** Where the object lives (or would live) on disk. */
  path(digest: string, kind?: ObjectKind): string;
  /**
   * Removes least recently used objects until the store is under `maxBytes`, never one used within `retentionMs`.
   * @default maxBytes 10 GiB, retentionMs one hour
   */
  evict(options: { readonly maxBytes?: number; readonly retentionMs?: number }): Promise<{
    readonly removed: number;
    readonly bytesFreed: number;
  }>;
}
