import {
  closeSync,
  createReadStream,
  mkdirSync,
  openSync,
  type ReadStream,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fromErrno, RemoteError } from '@fsw/errors';
import type { ObjectKind, Store } from '@fsw/tree';
import { type Digest, parseDigest } from './digest.js';
import { createObjectHasher, type ObjectHasher } from './hasher.js';
import { isTreeObject, treeEntries } from './tree-codec.js';

/** What the server remembers about one stored object. */
interface Entry {
  size: number;
  /** Last time the object was written, read or asked about (ms since the epoch): the LRU order. */
  lastUsed: number;
  kind: ObjectKind;
}

/** A push in progress that announced objects (see {@link ObjectSet.announce}). */
interface Announcement {
  readonly digests: Set<string>;
  /** Complete trees the push builds on: everything below them is kept too. */
  readonly trees: Set<string>;
  expiresAt: number;
}

/** The resolved settings of an {@link ObjectSet}. */
export interface ObjectSetOptions {
  readonly store: Store;
  readonly maxBytes: number;
  readonly retentionMs: number;
  readonly maxObjectBytes: number;
  readonly announceTtlMs: number;
  /** Called when a background eviction fails (it is retried on the next write). */
  readonly onError: (error: unknown) => void;
}

/** A located object: where it lives and how big it is. */
export interface StoredObject {
  readonly path: string;
  readonly size: number;
  readonly kind: ObjectKind;
}

/** An object ready to be sent: its bytes (small objects) or a stream of them. */
export type ReadableObject =
  | { readonly size: number; readonly bytes: Uint8Array; readonly stream?: undefined }
  | { readonly size: number; readonly stream: ReadStream; readonly bytes?: undefined };

/** The result of one eviction pass. */
export interface EvictionResult {
  readonly removed: number;
  readonly bytesFreed: number;
}

// Bodies up to this size are hashed in memory and written once; larger ones stream to a temp file as they arrive.
const SPILL_BYTES = 1024 * 1024;
// Tree objects are small listings; a larger object starting with the tree header is filed as a file without decoding.
const MAX_TREE_BYTES = 64 * 1024 * 1024;
// Eviction frees down to this fraction of maxBytes, so that a full store does not evict on every single write.
const LOW_WATER = 0.9;
const TEMP_ROOT = '.fsw-server-tmp';
const AUTO_EVICT_BACKOFF_MS = 1000;
const OBJECT_NAME = /^([0-9a-f]+)\.(file|tree)$/;

/**
 * The server's view of the store: an in-memory index of every object (size, kind, last use) kept in step with the
 * files, verified atomic writes, LRU eviction, and the announcements of running pushes that eviction must respect.
 */
export class ObjectSet {
  readonly #options: ObjectSetOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #announcements = new Map<string, Announcement>();
  /** Digests being renamed into place right now: eviction leaves them alone. */
  readonly #committing = new Map<string, number>();
  /** Digests being unlinked right now: a commit of the same digest waits for that first. */
  readonly #unlinking = new Map<string, Promise<void>>();
  readonly #tempDir: string;
  readonly #objectsDir: string;
  #bytes = 0;
  #tempSeq = 0;
  #evicting: Promise<EvictionResult> | undefined;
  #scan: Promise<void> = Promise.resolve();
  #announceSeq = 0;
  readonly #completeTrees = new Set<string>();
  #removals = 0;
  #autoEvictAfter = 0;
  /** The startup scan is done: from now on the index knows every object written through this server. */
  #scanned = false;
  evictions = 0;
  evictedBytes = 0;

  constructor(options: ObjectSetOptions) {
    this.#options = options;
    this.#tempDir = join(
      options.store.dir,
      TEMP_ROOT,
      `${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
    );
    this.#objectsDir = dirname(dirname(options.store.path(`blake3:${'0'.repeat(64)}`, 'file')));
  }

  /** Number of objects indexed. */
  get count(): number {
    return this.#entries.size;
  }

  /** Bytes of all objects indexed. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Removes the temp files of dead servers, creates our own temp dir, and starts indexing the store. */
  async init(): Promise<void> {
    try {
      await mkdir(this.#tempDir, { recursive: true });
    } catch (error) {
      throw fromErrno(error, { path: this.#tempDir, family: RemoteError, action: 'create directory' });
    }
    await this.#removeStaleTemps();
    this.#scan = this.#scanStore().then(() => {
      this.#scanned = true;
    });
    // A failed scan only leaves the index incomplete (lookups still fall back to the disk); surface it anyway.
    this.#scan.catch(this.#options.onError);
  }

  /** Resolves once the startup scan of the store has finished. */
  ready(): Promise<void> {
    return this.#scan.catch(() => undefined);
  }

  /** Removes this server's temp dir (uploads still running are aborted by their callers first). */
  async close(): Promise<void> {
    await rm(this.#tempDir, { recursive: true, force: true });
    // The shared temp root goes too, unless another server on this store still uses it.
    await rmdir(dirname(this.#tempDir)).catch(() => undefined);
  }

  async #removeStaleTemps(): Promise<void> {
    const root = dirname(this.#tempDir);
    let names: string[];
    try {
      names = await readdir(root);
    } catch {
      return;
    }
    await Promise.all(
      names.map(async (name) => {
        const pid = Number(name.split('-')[0]);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) return;
        if (join(root, name) === this.#tempDir) return;
        await rm(join(root, name), { recursive: true, force: true });
      }),
    );
  }

  async #scanStore(): Promise<void> {
    let prefixes: string[];
    try {
      prefixes = await readdir(this.#objectsDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const prefix of prefixes) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      let names: string[];
      try {
        names = await readdir(join(this.#objectsDir, prefix));
      } catch {
        continue;
      }
      await Promise.all(
        names.map(async (name) => {
          const match = OBJECT_NAME.exec(name);
          if (!match) return;
          const digest = parseDigest(prefix + (match[1] ?? ''));
          if (!digest || this.#entries.has(digest.full)) return;
          try {
            const info = await stat(join(this.#objectsDir, prefix, name));
            if (!info.isFile() || this.#entries.has(digest.full)) return;
            this.#add(digest.full, { size: info.size, lastUsed: info.mtimeMs, kind: match[2] as ObjectKind });
          } catch {
            // Removed while we looked: nothing to index.
          }
        }),
      );
    }
  }

  #add(key: string, entry: Entry): void {
    const previous = this.#entries.get(key);
    if (previous) this.#bytes -= previous.size;
    this.#entries.set(key, entry);
    this.#bytes += entry.size;
  }

  #remove(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      this.#bytes -= entry.size;
      // Some complete tree may have lost a descendant: forget them all (removals are rare, walks rebuild the set).
      this.#completeTrees.clear();
      this.#removals++;
    }
    return entry;
  }

  /**
   * Whether a walk found everything below this tree present, with nothing removed from the store since: `HasTree`
   * then answers for the whole subtree without reading it.
   */
  isCompleteTree(full: string): boolean {
    return this.#completeTrees.has(full);
  }

  /** Counts removals, so that a walk can tell whether its findings still hold when it ends. */
  get removals(): number {
    return this.#removals;
  }

  /** Records trees a walk found complete, unless something was removed since the walk began (`removalsAtStart`). */
  markComplete(trees: Iterable<string>, removalsAtStart: number): void {
    if (removalsAtStart !== this.#removals) return;
    for (const t of trees) this.#completeTrees.add(t);
  }

  /**
   * The object's location, or undefined when the store lacks it, and marks the object as used. Objects the index
   * does not know are looked for on disk (the scan may still be running, or another process wrote into the store)
   * unless `probe` is false and the scan is done.
   */
  async locate(digest: Digest, probe = true): Promise<StoredObject | undefined> {
    const known = this.#entries.get(digest.full);
    if (known) {
      known.lastUsed = now();
      return { path: this.#path(digest, known.kind), size: known.size, kind: known.kind };
    }
    if (!probe && this.#scanned) return undefined;
    // Not indexed: still being scanned, or written into the directory by another process.
    for (const kind of ['file', 'tree'] as const) {
      const path = this.#path(digest, kind);
      try {
        const info = await stat(path);
        if (!info.isFile()) continue;
        const entry = this.#entries.get(digest.full) ?? { size: info.size, lastUsed: info.mtimeMs, kind };
        entry.lastUsed = now();
        if (!this.#entries.has(digest.full)) this.#add(digest.full, entry);
        return { path: this.#path(digest, entry.kind), size: entry.size, kind: entry.kind };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
      }
    }
    return undefined;
  }

  /**
   * Whether the store holds the object (and marks it used). Once the startup scan is done this answers from the
   * index alone: a push of many new objects costs no disk lookups. An object another process put into the
   * directory may then be reported missing, which only costs its re-upload.
   */
  async has(digest: Digest): Promise<boolean> {
    return this.hasIndexed(digest) ?? (await this.locate(digest, false)) !== undefined;
  }

  /**
   * {@link has} without waiting, when the index can answer (the object is indexed, or the startup scan is done);
   * undefined when only the disk can tell.
   */
  hasIndexed(digest: Digest): boolean | undefined {
    const known = this.#entries.get(digest.full);
    if (known) {
      known.lastUsed = now();
      return true;
    }
    return this.#scanned ? false : undefined;
  }

  /** The object's bytes, or undefined when missing. */
  async readAll(digest: Digest): Promise<Uint8Array | undefined> {
    const found = await this.locate(digest);
    if (!found) return undefined;
    try {
      return await readFile(found.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#remove(digest.full);
        return undefined;
      }
      throw error;
    }
  }

  /**
   * The object's bytes for sending, or undefined when missing: objects up to 1 MiB are read whole (one system call,
   * much cheaper than a stream for the many small objects of a tree), larger ones as a stream of `chunkBytes` pieces.
   */
  async openRead(digest: Digest, chunkBytes = 64 * 1024): Promise<ReadableObject | undefined> {
    const found = await this.locate(digest);
    if (!found) return undefined;
    try {
      if (found.size <= SPILL_BYTES) {
        const bytes = await readFile(found.path);
        return { size: bytes.byteLength, bytes };
      }
      const handle = await open(found.path, 'r');
      // Reading from an open handle: an eviction that unlinks the file now cannot cut the download short.
      const size = (await handle.stat()).size;
      return { size, stream: createReadStream('', { fd: handle, highWaterMark: chunkBytes }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        // Evicted (or removed by another process) since it was located.
        this.#remove(digest.full);
        return undefined;
      }
      throw error;
    }
  }

  /**
   * The bytes of an indexed object of at most 1 MiB, read with one synchronous call (and marked used); undefined
   * when the index does not know it, it is larger, or it vanished (for {@link openRead} to settle).
   */
  readSmallSync(digest: Digest): Uint8Array | undefined {
    const known = this.#entries.get(digest.full);
    if (!known || known.size > SPILL_BYTES) return undefined;
    try {
      const bytes = readFileSync(this.#path(digest, known.kind));
      known.lastUsed = now();
      return bytes;
    } catch {
      return undefined;
    }
  }

  #path(digest: Digest, kind: ObjectKind): string {
    return this.#options.store.path(digest.full, kind);
  }

  /** Starts receiving an upload of `digest`. The caller feeds it chunks, then commits or aborts it. */
  async createWriter(digest: Digest): Promise<ObjectWriter> {
    return new ObjectWriter(
      this,
      digest,
      this.#options.maxObjectBytes,
      await createObjectHasher(digest.algorithm),
    );
  }

  /** @internal A temp path in this server's temp dir (same filesystem as the objects). */
  tempPath(): string {
    return join(this.#tempDir, `${++this.#tempSeq}`);
  }

  /**
   * @internal Moves a verified temp file into place and indexes it. Returns false when the object was already there.
   */
  async commit(digest: Digest, temp: string, size: number, kind: ObjectKind): Promise<boolean> {
    const key = digest.full;
    this.#committing.set(key, (this.#committing.get(key) ?? 0) + 1);
    try {
      const pending = this.#unlinking.get(key);
      if (pending) await pending;
      const existed = this.#entries.has(key);
      const path = this.#path(digest, kind);
      try {
        await rename(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        // The prefix directory does not exist yet (the temp file is there: we just wrote it).
        await mkdir(dirname(path), { recursive: true });
        await rename(temp, path);
      }
      this.#add(key, { size, lastUsed: now(), kind });
      this.#maybeEvict();
      return !existed;
    } finally {
      const left = (this.#committing.get(key) ?? 1) - 1;
      if (left === 0) this.#committing.delete(key);
      else this.#committing.set(key, left);
    }
  }

  /**
   * @internal {@link commit} for a verified body held in memory as the pieces it arrived in (`size` bytes in all),
   * with synchronous calls (a temp file written whole, then renamed into place): for the many small objects of a tree
   * this costs a fraction of the thread-pool round trips of the asynchronous path, and the pieces go to the file in
   * one `writev`, never gathered into one buffer first. Returns undefined, having done nothing, while an eviction is
   * still unlinking the same object: the caller then takes the asynchronous path, which waits for that.
   */
  storeSync(
    digest: Digest,
    pieces: readonly Uint8Array[],
    size: number,
    kind: ObjectKind,
  ): boolean | undefined {
    const key = digest.full;
    if (this.#unlinking.has(key)) return undefined;
    const temp = this.tempPath();
    const path = this.#path(digest, kind);
    try {
      writePiecesSync(temp, pieces);
      try {
        renameSync(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        // The prefix directory does not exist yet (the temp file is there: we just wrote it).
        mkdirSync(dirname(path), { recursive: true });
        renameSync(temp, path);
      }
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
    const existed = this.#entries.has(key);
    this.#add(key, { size, lastUsed: now(), kind });
    this.#maybeEvict();
    return !existed;
  }

  /**
   * Records that a push relies on these objects (present ones it will build on, missing ones it was told to upload):
   * eviction keeps them until the push completes (`release` with the same key) or `announceTtlMs` passes without the
   * key being announced again.
   */
  announce(key: string | undefined, digests: Iterable<string>, completeTrees: Iterable<string> = []): string {
    const id = key ?? `batch-${++this.#announceSeq}`;
    const expiresAt = now() + this.#options.announceTtlMs;
    let a = this.#announcements.get(id);
    if (!a) {
      a = { digests: new Set(), trees: new Set(), expiresAt };
      this.#announcements.set(id, a);
    }
    for (const d of digests) a.digests.add(d);
    for (const t of completeTrees) a.trees.add(t);
    a.expiresAt = expiresAt;
    return id;
  }

  /** Forgets an announcement: the push it belonged to is complete. */
  release(key: string): void {
    this.#announcements.delete(key);
  }

  /** Number of announcements currently protecting objects. */
  get announcements(): number {
    this.#expireAnnouncements();
    return this.#announcements.size;
  }

  #expireAnnouncements(): void {
    const at = now();
    for (const [key, a] of this.#announcements) if (a.expiresAt <= at) this.#announcements.delete(key);
  }

  /** Adds `trees` and every object below them (as far as the store has them) to `into`. */
  async #addDescendants(trees: readonly string[], into: Set<string>): Promise<void> {
    const visited = new Set<string>();
    let level = trees.filter((t) => !visited.has(t) && visited.add(t));
    while (level.length > 0) {
      const next: string[] = [];
      for (const full of level) {
        into.add(full);
        const digest = parseDigest(full);
        const bytes = digest && (await this.readAll(digest));
        if (!bytes) continue;
        let entries: ReturnType<typeof treeEntries>;
        try {
          entries = treeEntries(bytes);
        } catch {
          continue;
        }
        for (const e of entries) {
          if (e.type === 'file') into.add(e.digest);
          else if (e.type === 'dir' && !visited.has(e.digest)) {
            visited.add(e.digest);
            next.push(e.digest);
          }
        }
      }
      level = next;
    }
  }

  #maybeEvict(): void {
    if (this.#bytes <= this.#options.maxBytes || this.#evicting || now() < this.#autoEvictAfter) return;
    this.evict().then(() => {
      // Everything left is retained or announced: sorting the whole index again on every write would make a push
      // larger than maxBytes quadratic, so wait a little before the next automatic pass.
      if (this.#bytes > this.#options.maxBytes) this.#autoEvictAfter = now() + AUTO_EVICT_BACKOFF_MS;
    }, this.#options.onError);
  }

  /**
   * Removes least-recently-used objects while the store is over `maxBytes`, down to 90% of it, skipping objects used
   * within `retentionMs` and objects announced by a running push. Several calls at once share one pass.
   */
  evict(): Promise<EvictionResult> {
    if (this.#evicting) return this.#evicting;
    const run = this.#evictOnce().finally(() => {
      this.#evicting = undefined;
    });
    this.#evicting = run;
    return run;
  }

  async #evictOnce(): Promise<EvictionResult> {
    await this.ready();
    const { maxBytes, retentionMs } = this.#options;
    if (this.#bytes <= maxBytes) return { removed: 0, bytesFreed: 0 };
    const target = Math.floor(maxBytes * LOW_WATER);
    this.#expireAnnouncements();
    const pinned = new Set<string>();
    const pinnedTrees: string[] = [];
    for (const a of this.#announcements.values()) {
      for (const d of a.digests) pinned.add(d);
      pinnedTrees.push(...a.trees);
    }
    await this.#addDescendants(pinnedTrees, pinned);
    const candidates = [...this.#entries].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let removed = 0;
    let bytesFreed = 0;
    for (const [key, seen] of candidates) {
      if (this.#bytes <= target) break;
      const entry = this.#entries.get(key);
      // Re-check: the entry may have been used, replaced or removed since the list was sorted.
      if (entry !== seen || entry.lastUsed > now() - retentionMs) continue;
      if (pinned.has(key) || this.#committing.has(key)) continue;
      const digest = parseDigest(key);
      if (!digest) continue;
      this.#remove(key);
      const unlinking = unlink(this.#path(digest, entry.kind)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') {
          // Could not remove it: keep it indexed so the accounting stays true.
          if (!this.#entries.has(key)) this.#add(key, entry);
          throw error;
        }
      });
      this.#unlinking.set(key, unlinking);
      try {
        await unlinking;
        removed++;
        bytesFreed += entry.size;
      } finally {
        this.#unlinking.delete(key);
      }
    }
    this.evictions += removed;
    this.evictedBytes += bytesFreed;
    return { removed, bytesFreed };
  }
}

/**
 * One upload in progress: hashes the bytes as they arrive, keeps small bodies in memory and streams large ones to a
 * temp file, then verifies the digest and renames the object into place. Nothing reaches the store unverified.
 */
export class ObjectWriter {
  readonly #objects: ObjectSet;
  readonly #digest: Digest;
  readonly #maxBytes: number;
  readonly #hasher: ObjectHasher;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #head = new Uint8Array(0);
  #temp: string | undefined;
  /** The temp file's descriptor once the body spilled to disk (written with blocking calls, one per chunk). */
  #fd: number | undefined;
  #done = false;

  constructor(objects: ObjectSet, digest: Digest, maxBytes: number, hasher: ObjectHasher) {
    this.#objects = objects;
    this.#digest = digest;
    this.#maxBytes = maxBytes;
    this.#hasher = hasher;
  }

  /** Bytes received so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Adds a chunk.
   * @throws RemoteError E_TOO_LARGE past `maxObjectBytes`
   */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#done) throw new Error('upload already finished');
    if (chunk.byteLength === 0) return;
    this.#size += chunk.byteLength;
    if (this.#size > this.#maxBytes) {
      throw new RemoteError(
        'E_TOO_LARGE',
        `object ${this.#digest.full} is larger than the server's limit of ${this.#maxBytes} bytes`,
      );
    }
    if (this.#head.byteLength < 4) {
      const head = new Uint8Array(Math.min(4, this.#head.byteLength + chunk.byteLength));
      head.set(this.#head);
      head.set(chunk.subarray(0, head.byteLength - this.#head.byteLength), this.#head.byteLength);
      this.#head = head;
    }
    this.#hasher.update(chunk);
    if (this.#fd !== undefined) {
      writeAll(this.#fd, chunk);
      return;
    }
    this.#chunks.push(chunk);
    if (this.#size > SPILL_BYTES) {
      this.#temp = this.#objects.tempPath();
      this.#fd = openSync(this.#temp, 'wx');
      const buffered = this.#chunks;
      this.#chunks = [];
      for (const c of buffered) writeAll(this.#fd, c);
    }
  }

  /**
   * Verifies the digest and stores the object. Resolves to true when it was new, false when it was already stored.
   * @throws RemoteError E_DIGEST_MISMATCH when the bytes do not hash to the digest (nothing stored)
   */
  async commit(): Promise<boolean> {
    if (this.#done) throw new Error('upload already finished');
    this.#done = true;
    try {
      const actual = this.#hasher.digest();
      if (actual !== this.#digest.hex) {
        throw new RemoteError(
          'E_DIGEST_MISMATCH',
          `object ${this.#digest.full}: the ${this.#size} bytes received hash to ${this.#digest.algorithm}:${actual}`,
        );
      }
      let kind: ObjectKind = 'file';
      if (this.#fd !== undefined) {
        closeSync(this.#fd);
        this.#fd = undefined;
        if (looksLikeTree(this.#head) && this.#size <= MAX_TREE_BYTES && this.#temp) {
          kind = isTreeObject(await readFile(this.#temp)) ? 'tree' : 'file';
        }
      } else {
        const pieces = this.#chunks;
        this.#chunks = [];
        // Gathered into one buffer only to decode what looks like a tree (a small listing); other bodies go to the file
        // as the pieces they arrived in.
        if (looksLikeTree(this.#head) && isTreeObject(concat(pieces, this.#size))) kind = 'tree';
        const stored = this.#objects.storeSync(this.#digest, pieces, this.#size, kind);
        if (stored !== undefined) return stored;
        this.#temp = this.#objects.tempPath();
        await writeFile(this.#temp, concat(pieces, this.#size), { flag: 'wx' });
      }
      const created = await this.#objects.commit(this.#digest, this.#temp as string, this.#size, kind);
      this.#temp = undefined;
      return created;
    } finally {
      await this.#cleanup();
    }
  }

  /** Drops the upload and its temp file. Safe to call at any time, also after commit. */
  async abort(): Promise<void> {
    this.#done = true;
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    this.#chunks = [];
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Already closed or gone: the temp file is removed below either way.
      }
    }
    const temp = this.#temp;
    this.#temp = undefined;
    if (temp) await rm(temp, { force: true });
  }
}

/**
 * Writes all of `bytes` to `fd` with blocking calls: a spilled upload arrives in chunks of 64 KiB to a few MiB, each
 * written in tens of microseconds, far less than an asynchronous write's thread-pool round trip.
 */
function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.byteLength) offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
}

/** Creates `path` (it must not exist) holding `pieces` one after another, with blocking calls and no gathering copy. */
function writePiecesSync(path: string, pieces: readonly Uint8Array[]): void {
  const fd = openSync(path, 'wx');
  try {
    if (pieces.length === 1) writeAll(fd, pieces[0] as Uint8Array);
    else if (pieces.length > 1) writevAll(fd, pieces);
  } finally {
    closeSync(fd);
  }
}

/** `writev` of all of `pieces`, again from where a short write stopped. */
function writevAll(fd: number, pieces: readonly Uint8Array[]): void {
  let rest = pieces;
  for (;;) {
    let written = writevSync(fd, rest as Uint8Array[]);
    let i = 0;
    while (i < rest.length && written >= (rest[i] as Uint8Array).byteLength) {
      written -= (rest[i] as Uint8Array).byteLength;
      i++;
    }
    if (i === rest.length) return;
    rest = [(rest[i] as Uint8Array).subarray(written), ...rest.slice(i + 1)];
  }
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** The tree header: magic 0x3eee, version 1, little-endian. */
function looksLikeTree(head: Uint8Array): boolean {
  return (
    head.byteLength === 4 && head[0] === 0xee && head[1] === 0x3e && head[2] === 0x01 && head[3] === 0x00
  );
}

/** Milliseconds since the epoch with sub-millisecond resolution, so that LRU order has no ties. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
