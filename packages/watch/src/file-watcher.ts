/// <reference types="node" preserve="true" />
// The declarations use AsyncDisposable and Symbol.asyncDispose, which @types/node provides on every Node version.
import type { Stats } from 'node:fs';
import { lstat, readdir, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { WatchError } from '@fsw/errors';
import parcel from '@parcel/watcher';
import { BatchQueue } from './internal/batch-queue.js';
import { assertDir, toWatchError } from './internal/errors.js';
import { IgnoreRules } from './internal/ignore-rules.js';
import { InodeIndex, type Known } from './internal/inode-index.js';
import { lstatAll } from './internal/lstat-all.js';
import { type ResolvedFilter, resolveFilter } from './internal/options.js';
import { scan } from './internal/scan.js';
import type { FileEvent, FileEventType, WatchOptions } from './types.js';

type RawType = 'create' | 'update' | 'delete';

/**
 * Not part of the API: a replacement for `@parcel/watcher`'s `subscribe` passed under this key of the options, so
 * that tests can make the backend lose notifications (as it does under load) and check what is recovered.
 */
const BACKEND = Symbol.for('@fsw/watch.backend');
type Subscribe = typeof parcel.subscribe;

/** The raw notifications of one path since the last batch. */
interface Pending {
  first: RawType;
  last: RawType;
  timeMs: number;
  retried: boolean;
}

/** An event being built, with the inode that pairs a deletion with a creation. */
interface Draft {
  type: FileEventType;
  path: string;
  isDir: boolean;
  timeMs: number;
  ino?: number | undefined;
  /** The state read from disk, for the index. */
  state?: Known;
  oldPath?: string;
  /** A folder whose contents must be listed (created, moved in, or replaced). */
  scanIt?: boolean;
}

/** Listener types of {@link FileWatcher.on}. */
export interface FileWatcherEvents {
  /** A batch of coalesced events, never empty. */
  events: (batch: FileEvent[]) => void;
  /** A failure after start; the watcher is closed when listeners run. */
  error: (error: WatchError) => void;
}

// A batch with this many paths is a burst: its folders are compared with the disk once it is over.
const BURST_PATHS = 32;
const RECONCILE_QUIET_MS = 300;
const RECONCILE_MAX_MS = 3000;
/** Folders of at most this many entries are compared with the disk after any batch (larger ones after bursts). */
const QUIET_LIST_MAX = 4096;
// How long the state of a reported path is remembered to recognise a late notification of a change already
// reported (the backend may deliver the creation and the write of one file in two rounds).
const RECENT_MS = 5000;

/** The state of a path when it was last reported. */
interface Seen {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly atMs: number;
}

function toKnown(stat: Stats): Known {
  return { ino: stat.ino, isDir: stat.isDirectory(), mtimeMs: stat.mtimeMs, size: stat.size };
}

// The #recent marker of a path whose deletion was reported.
const GONE: Seen = { ino: -1, size: -1, mtimeMs: -1, ctimeMs: -1, atMs: 0 };

function sameState(seen: Seen | undefined, stat: Stats): boolean {
  return (
    seen !== undefined &&
    seen.ino === stat.ino &&
    seen.size === stat.size &&
    seen.mtimeMs === stat.mtimeMs &&
    seen.ctimeMs === stat.ctimeMs
  );
}

// Old names of renamed folders remembered to drop the backend's stale paths below them (see #isStale).
const MAX_MOVED = 256;

function isGone(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function rethrowLater(error: unknown): void {
  // A listener that throws must not corrupt the watcher's state: surface it as an uncaught exception, like an
  // EventEmitter listener would, but outside our bookkeeping.
  queueMicrotask(() => {
    throw error;
  });
}

/**
 * Watches a folder tree and delivers debounced, coalesced batches of {@link FileEvent}s, through an async iterator
 * (`for await (const batch of watcher)`) or `on('events')`. Built on `@parcel/watcher` (inotify, FSEvents,
 * ReadDirectoryChangesW), plus an inode index of the tree that turns a move into one `renamed` and an atomic save
 * into one `modified`.
 *
 * Batches delivered while nobody listens (no iterator, no `events` listener) are kept until the first iterator reads
 * them. Errors after start close the watcher and reach iterators (thrown) and `error` listeners; with neither, an
 * error is thrown as an uncaught exception, as an EventEmitter would.
 */
export class FileWatcher implements AsyncIterable<FileEvent[]>, AsyncDisposable {
  /** The watched folder, absolute. Event paths start with it. */
  readonly path: string;
  readonly #filter: ResolvedFilter;
  readonly #debounceMs: number;
  readonly #maxWaitMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #rules: IgnoreRules;
  readonly #subscribe: Subscribe;
  readonly #index = new InodeIndex();
  readonly #prefix: string;
  #real: string;
  #nativePrefix: string;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  #started = false;
  #pending = new Map<string, Pending>();
  #debounceTimer: NodeJS.Timeout | undefined;
  #maxTimer: NodeJS.Timeout | undefined;
  #processing = false;
  #flushAgain = false;
  #rootGone = false;
  #reloadIgnore = new Set<string>();
  readonly #subs = new Map<string, parcel.AsyncSubscription>();
  #nativeGlobs: string[] = [];
  #subGlobs: string[] = [];
  readonly #moved = new Set<string>();
  readonly #recent = new Map<string, Seen>();
  #dirty = new Set<string>();
  #reconcileTimer: NodeJS.Timeout | undefined;
  #reconcileDeadline: number | undefined;
  #reconcileDue = false;
  #reconcileAll = false;
  readonly #queues = new Set<BatchQueue>();
  readonly #buffered: FileEvent[][] = [];
  #bufferedError: unknown;
  #hasBufferedError = false;
  readonly #listeners = {
    events: new Set<FileWatcherEvents['events']>(),
    error: new Set<FileWatcherEvents['error']>(),
  };
  readonly #onAbort = (): void => {
    this.#cancel(this.#signal?.reason);
  };
  readonly #onNative = (err: Error | null, events: parcel.Event[]): void => this.#receive(err, events);

  /**
   * Creates a watcher; nothing is watched until {@link start} or the first iteration.
   * @throws WatchError `E_INVALID_ARGUMENT` for a negative `debounceMs`/`maxWaitMs` or an unknown event type
   */
  constructor(path: string, options: WatchOptions = {}) {
    this.path = resolve(path);
    this.#prefix = `${this.path}/`;
    this.#real = this.path;
    this.#nativePrefix = this.#prefix;
    this.#filter = resolveFilter(options);
    const debounceMs = options.debounceMs ?? 50;
    const maxWaitMs = options.maxWaitMs ?? debounceMs * 10;
    for (const [name, value] of [
      ['debounceMs', debounceMs],
      ['maxWaitMs', maxWaitMs],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) {
        throw new WatchError('E_INVALID_ARGUMENT', `invalid ${name} ${value}: expected a number >= 0`);
      }
    }
    this.#debounceMs = debounceMs;
    this.#maxWaitMs = Math.max(maxWaitMs, debounceMs);
    this.#signal = options.signal;
    this.#rules = new IgnoreRules(this.path, this.#filter.ignore, this.#filter.ignoreFiles);
    const backend = (options as { [BACKEND]?: { subscribe?: Subscribe } })[BACKEND];
    this.#subscribe = backend?.subscribe ?? parcel.subscribe.bind(parcel);
  }

  /** True once {@link close} was called or the watcher failed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Starts watching: resolves once the native watches are in place and the tree is indexed, so every change made
   * after it resolves is reported. Calling it again returns the same promise.
   * @throws WatchError `E_NOT_FOUND` (no such folder), `E_NOT_DIR` (a file), `E_PERMISSION`, `E_WATCH_LIMIT`
   *   (inotify watches exhausted: raise `fs.inotify.max_user_watches`), `E_BACKEND`; `signal.reason` when aborted
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#closed) throw new WatchError('E_INVALID_ARGUMENT', `watcher of ${this.path} is closed`);
    this.#signal?.throwIfAborted();
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    try {
      await assertDir(this.path);
      this.#real = await realpath(this.path);
      this.#nativePrefix = `${this.#real}/`;
      const indexing = (): Promise<void> =>
        scan(this.path, {
          root: this.path,
          rules: this.#rules,
          recursive: this.#filter.recursive,
          signal: this.#signal,
          onEntry: (e) => this.#index.set(e.path, e),
        });
      const subscribing = async (): Promise<void> => {
        // Only now are the ignore files read: a nested `!pattern` forbids skipping folders natively.
        this.#nativeGlobs = this.#filter.recursive ? await this.#rules.nativeGlobs(true) : [];
        this.#subGlobs = this.#filter.recursive ? await this.#rules.nativeGlobs(false) : [];
        const ignore: (string | RegExp)[] = [...this.#nativeGlobs];
        // Non-recursive: the backend skips everything below the direct children (no watches spent on them).
        if (!this.#filter.recursive) ignore.push(/\//);
        const sub = await this.#subscribe(this.#real, this.#onNative, ignore.length ? { ignore } : {});
        // A close() that raced with subscribing: drop the subscription at once.
        if (this.#closed) await sub.unsubscribe().catch(() => undefined);
        else this.#subs.set(this.path, sub);
      };
      if (this.#filter.ignoreFiles.length > 0) {
        // Nested ignore files decide what the backend may skip: index (reading them) first, then subscribe.
        await indexing().catch((error: unknown) => {
          throw this.#signal?.aborted ? this.#signal.reason : toWatchError(error, this.path);
        });
        await subscribing().catch((error: unknown) => {
          throw toWatchError(error, this.path);
        });
      } else {
        // Both walk the tree: do it at once.
        const [subscribed, indexed] = await Promise.allSettled([subscribing(), indexing()]);
        if (subscribed.status === 'rejected') throw toWatchError(subscribed.reason, this.path);
        if (indexed.status === 'rejected') {
          if (this.#signal?.aborted) throw this.#signal.reason;
          throw toWatchError(indexed.reason, this.path);
        }
      }
      this.#signal?.throwIfAborted();
      if (this.#closed) return;
      this.#started = true;
      // Notifications that arrived while indexing wait for the index: deliver them now.
      if (this.#pending.size > 0 || this.#rootGone) this.#schedule();
      // The backend can lose the very first notifications after subscribing: compare the whole tree with the index
      // once things are quiet.
      this.#armReconcile(true);
    } catch (error) {
      // Not #shutdown(): it waits for this very start.
      const released = this.#release();
      this.#closing ??= released;
      await released;
      throw error;
    }
  }

  /**
   * Stops watching and frees the native handles; iterators end after the batches already delivered to them.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#shutdown();
    for (const queue of this.#queues) queue.end();
    this.#queues.clear();
  }

  /** Closes the watcher (`await using watcher = new FileWatcher(dir)`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    // Wait for a start in progress, so that its subscription is released too (it checks #closed).
    if (this.#starting !== undefined) await this.#starting.catch(() => undefined);
    await this.#release();
  }

  /** Stops timers and drops every native subscription. */
  async #release(): Promise<void> {
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    clearTimeout(this.#debounceTimer);
    clearTimeout(this.#maxTimer);
    clearTimeout(this.#reconcileTimer);
    this.#pending.clear();
    const subs = [...this.#subs.values()];
    this.#subs.clear();
    await Promise.all(subs.map((sub) => sub.unsubscribe().catch(() => undefined)));
  }

  /** Adds a listener: `events` receives each batch, `error` a failure after start (the watcher is then closed). */
  on<K extends keyof FileWatcherEvents>(event: K, listener: FileWatcherEvents[K]): this {
    (this.#listeners[event] as Set<FileWatcherEvents[K]>).add(listener);
    if (event === 'events') this.#drainTo((batch) => (listener as FileWatcherEvents['events'])(batch));
    return this;
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof FileWatcherEvents>(event: K, listener: FileWatcherEvents[K]): this {
    (this.#listeners[event] as Set<FileWatcherEvents[K]>).delete(listener);
    return this;
  }

  /**
   * Iterates over batches, starting the watcher if needed. The iteration ends when the watcher is closed and throws
   * a `WatchError` (or `signal.reason`) when it fails. Leaving the loop early detaches this iterator only; call
   * {@link close} (or use {@link watch}) to stop watching.
   */
  [Symbol.asyncIterator](): AsyncIterator<FileEvent[]> {
    const queue = new BatchQueue((q) => this.#queues.delete(q));
    this.#drainTo((batch) => queue.push(batch));
    if (this.#hasBufferedError) {
      this.#hasBufferedError = false;
      queue.fail(this.#bufferedError);
    } else if (this.#closed) queue.end();
    else {
      this.#queues.add(queue);
      this.start().catch((error: unknown) => {
        this.#queues.delete(queue);
        queue.fail(error);
      });
    }
    return queue;
  }

  #drainTo(push: (batch: FileEvent[]) => void): void {
    for (const batch of this.#buffered.splice(0)) push(batch);
  }

  #receive(err: Error | null, events: parcel.Event[]): void {
    if (this.#closed) return;
    if (err) {
      this.#fail(toWatchError(err, this.path));
      return;
    }
    const now = Date.now();
    const { recursive } = this.#filter;
    for (const event of events) {
      const path = this.#translate(event.path);
      if (path === this.path) {
        // inotify's IN_DELETE_SELF/IN_MOVE_SELF on the root: nothing below it is watched any more.
        if (event.type === 'delete') this.#rootGone = true;
        continue;
      }
      if (!path.startsWith(this.#prefix)) continue;
      if (this.#moved.size > 0 && this.#isStale(path)) continue;
      const rel = path.slice(this.#prefix.length);
      if (!recursive && rel.includes('/')) continue;
      if (!this.#rules.empty) {
        const name = rel.slice(rel.lastIndexOf('/') + 1);
        if (this.#rules.isIgnoreFile(name))
          this.#reloadIgnore.add(rel.slice(0, Math.max(0, rel.lastIndexOf('/'))));
        if (this.#rules.ignores(rel, this.#index.get(path)?.isDir ?? false)) continue;
      }
      const type = event.type as RawType;
      const known = this.#pending.get(path);
      if (known === undefined)
        this.#pending.set(path, { first: type, last: type, timeMs: now, retried: false });
      else known.last = type;
    }
    if (this.#rootGone) {
      // Deliver what happened before the root went away, then fail.
      this.#flush();
      return;
    }
    if (this.#pending.size > 0) this.#schedule();
  }

  /** Native paths -> our paths: the real root back to the given root. */
  #translate(nativePath: string): string {
    if (this.#real === this.path) return nativePath;
    if (nativePath.startsWith(this.#nativePrefix))
      return this.#prefix + nativePath.slice(this.#nativePrefix.length);
    return nativePath === this.#real ? this.path : nativePath;
  }

  #schedule(): void {
    if (!this.#started || this.#closed) return;
    clearTimeout(this.#debounceTimer);
    this.#debounceTimer = setTimeout(() => this.#flush(), this.#debounceMs);
    this.#maxTimer ??= setTimeout(() => this.#flush(), this.#maxWaitMs);
  }

  /** Starts processing at once (or right after the batch in progress). */
  #flushNow(): void {
    if (this.#closed || !this.#started) return;
    if (this.#processing) this.#flushAgain = true;
    else void this.#drain();
  }

  #flush(): void {
    clearTimeout(this.#debounceTimer);
    clearTimeout(this.#maxTimer);
    this.#debounceTimer = undefined;
    this.#maxTimer = undefined;
    if (this.#closed || !this.#started) return;
    if (this.#processing) {
      this.#flushAgain = true;
      return;
    }
    void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#processing = true;
    try {
      do {
        this.#flushAgain = false;
        const batch = this.#pending;
        this.#pending = new Map();
        if (batch.size > 0) {
          const events = await this.#process(batch);
          if (this.#closed) return;
          if (events.length > 0) this.#emit(events);
          this.#markTouched(batch);
        }
        if (this.#reconcileDue && !this.#rootGone) {
          this.#reconcileDue = false;
          // What the comparison finds goes through the same coalescing, as if the backend had reported it.
          if (await this.#reconcile()) this.#flushAgain = true;
          if (this.#closed) return;
        }
      } while (this.#flushAgain && !this.#closed);
      if (this.#rootGone && !this.#closed) {
        this.#fail(
          new WatchError('E_NOT_FOUND', `watched directory ${this.path} was deleted or moved away`, {
            path: this.path,
          }),
        );
      } else if (this.#pending.size > 0) this.#schedule();
    } catch (error) {
      this.#fail(toWatchError(error, this.path));
    } finally {
      this.#processing = false;
    }
  }

  /**
   * Notes the folders of a batch for a comparison with the disk once things are quiet: @parcel/watcher can drop a
   * round of notifications (parcel-bundler/watcher#183: events added between handing a round to JavaScript and
   * clearing it are lost), seen even for two changes in a row on a loaded machine. After a burst, every folder whose
   * modification time changed is compared too.
   */
  #markTouched(batch: Map<string, Pending>): void {
    for (const path of batch.keys()) this.#dirty.add(path.slice(0, path.lastIndexOf('/')));
    this.#armReconcile(batch.size >= BURST_PATHS);
  }

  #armReconcile(all: boolean): void {
    if (all) this.#reconcileAll = true;
    clearTimeout(this.#reconcileTimer);
    const due = (): void => {
      clearTimeout(this.#reconcileTimer);
      this.#reconcileTimer = undefined;
      this.#reconcileDeadline = undefined;
      if (this.#closed) return;
      this.#reconcileDue = true;
      this.#flushNow();
    };
    this.#reconcileTimer = setTimeout(due, RECONCILE_QUIET_MS);
    this.#reconcileDeadline ??= Date.now() + RECONCILE_MAX_MS;
    if (Date.now() >= this.#reconcileDeadline) due();
  }

  /**
   * Compares the folders of recent batches with the index (after a burst or at start, every folder whose
   * modification time changed too), and queues what differs as if it had been notified. Returns true when something
   * was queued.
   */
  async #reconcile(): Promise<boolean> {
    const index = this.#index;
    const dirs = this.#dirty;
    this.#dirty = new Set();
    const all = this.#reconcileAll;
    this.#reconcileAll = false;
    // Creations and deletions change their folder's mtime even when their notification was lost.
    const folders: string[] = [];
    const collectFolders = (dir: string): void => {
      for (const [name, known] of index.children(dir)) {
        if (!known.isDir) continue;
        folders.push(`${dir}/${name}`);
        if (this.#filter.recursive) collectFolders(`${dir}/${name}`);
      }
    };
    if (all && this.#filter.recursive) collectFolders(this.path);
    const folderStats = await lstatAll(folders);
    folders.forEach((dir, i) => {
      const stat = folderStats[i];
      if (stat !== undefined && !(stat instanceof Error) && stat.mtimeMs !== index.get(dir)?.mtimeMs)
        dirs.add(dir);
    });
    if (all) dirs.add(this.path);
    else {
      // Outside bursts, a folder too large to list after every change is left to its notifications.
      for (const dir of dirs) if (index.children(dir).size > QUIET_LIST_MAX) dirs.delete(dir);
    }
    let queued = false;
    const queue = (path: string, first: RawType, last: RawType): void => {
      if (this.#pending.has(path)) return;
      this.#pending.set(path, { first, last, timeMs: Date.now(), retried: false });
      queued = true;
    };
    for (const dir of dirs) {
      if (this.#closed) return false;
      if (dir !== this.path && !index.get(dir)?.isDir) continue;
      if (!this.#filter.recursive && dir !== this.path) continue;
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue; // Gone: its parent's comparison (or notification) reports it.
      }
      const stats = await lstatAll(names.map((name) => `${dir}/${name}`));
      const known = index.children(dir);
      const onDisk = new Set<string>();
      names.forEach((name, i) => {
        const stat = stats[i];
        if (stat === undefined || stat instanceof Error) return;
        const path = `${dir}/${name}`;
        onDisk.add(name);
        if (!this.#rules.empty && this.#rules.ignores(path.slice(this.#prefix.length), stat.isDirectory()))
          return;
        const k = known.get(name);
        if (k === undefined) queue(path, 'create', 'create');
        else if (k.ino !== stat.ino) queue(path, 'delete', 'create');
        else if (!k.isDir && (k.mtimeMs !== stat.mtimeMs || k.size !== stat.size))
          queue(path, 'update', 'update');
      });
      for (const name of [...known.keys()])
        if (!onDisk.has(name)) queue(`${dir}/${name}`, 'delete', 'delete');
      if (dir !== this.path) {
        const stat = await lstat(dir).catch(() => undefined);
        if (stat?.isDirectory()) index.set(dir, toKnown(stat));
      }
    }
    return queued;
  }

  /** Coalesces one batch of raw notifications into events and brings the index up to date. */
  async #process(batch: Map<string, Pending>): Promise<FileEvent[]> {
    const index = this.#index;
    for (const dir of this.#reloadIgnore) await this.#rules.loadDir(dir, true);
    this.#reloadIgnore.clear();

    const deleted: Draft[] = [];
    const present: { path: string; pending: Pending; existed: boolean }[] = [];
    for (const [path, pending] of batch) {
      // A path existed before the batch if its first notification was not a creation, or if the index knew it
      // (an editor's atomic save reports a "creation" of a file that was there all along).
      const existed = pending.first !== 'create' || index.has(path);
      const exists = pending.last !== 'delete';
      if (!existed && !exists) continue;
      if (exists) {
        present.push({ path, pending, existed });
        continue;
      }
      const known = index.get(path);
      // Already reported gone (found by a reconciliation before the backend's own notification came).
      if (known === undefined && this.#recent.get(path)?.ino === GONE.ino) continue;
      deleted.push({
        type: 'deleted',
        path,
        isDir: known?.isDir ?? false,
        timeMs: pending.timeMs,
        ino: known?.ino,
      });
    }

    const stats = await lstatAll(present.map((p) => p.path));

    const created: Draft[] = [];
    const modified: Draft[] = [];
    const nowMs = Date.now();
    for (const [path, seen] of this.#recent) {
      if (nowMs - seen.atMs < RECENT_MS) break;
      this.#recent.delete(path);
    }
    present.forEach(({ path, pending, existed }, i) => {
      const stat = stats[i]!;
      const known = index.get(path);
      if (stat instanceof Error) {
        if (isGone(stat)) {
          // Gone again already: its deletion is on the way. Carry the path over to the next batch once, where the
          // two coalesce; if nothing comes, report what is known.
          if (!pending.retried) {
            const later = this.#pending.get(path);
            if (later === undefined) this.#pending.set(path, { ...pending, retried: true });
            else {
              later.first = pending.first;
              later.timeMs = pending.timeMs;
              later.retried = true;
            }
            return;
          }
          if (existed) {
            deleted.push({
              type: 'deleted',
              path,
              isDir: known?.isDir ?? false,
              timeMs: pending.timeMs,
              ino: known?.ino,
            });
          }
          return;
        }
        // Unreadable metadata (permissions): still report the change, with what the index knows.
        (existed ? modified : created).push({
          type: existed ? 'modified' : 'created',
          path,
          isDir: known?.isDir ?? false,
          timeMs: pending.timeMs,
        });
        return;
      }
      const isDir = stat.isDirectory();
      const seen = this.#recent.get(path);
      this.#recent.delete(path);
      this.#recent.set(path, {
        ino: stat.ino,
        size: stat.size,
        mtimeMs: stat.mtimeMs,
        ctimeMs: stat.ctimeMs,
        atMs: nowMs,
      });
      // Nothing changed since this state was reported: a late notification of the same change.
      if (existed && sameState(seen, stat)) return;
      if (existed) {
        // Same name, new inode: replaced (atomic save, or a folder deleted and made again).
        const replaced = known !== undefined && known.ino !== stat.ino;
        modified.push({
          type: 'modified',
          path,
          isDir,
          timeMs: pending.timeMs,
          ino: stat.ino,
          state: toKnown(stat),
          scanIt: replaced && isDir,
        });
      } else {
        created.push({
          type: 'created',
          path,
          isDir,
          timeMs: pending.timeMs,
          ino: stat.ino,
          state: toKnown(stat),
          scanIt: isDir,
        });
      }
    });
    if (this.#pending.size > 0) this.#schedule();

    // A deletion and a creation of the same inode in one batch are one move.
    const renamed: Draft[] = [];
    if (deleted.length > 0 && created.length > 0) {
      const byIno = new Map<number, Draft>();
      for (const d of deleted) if (d.ino !== undefined) byIno.set(d.ino, d);
      for (const c of created) {
        const d = c.ino === undefined ? undefined : byIno.get(c.ino);
        if (d === undefined || d.isDir !== c.isDir) continue;
        byIno.delete(c.ino!);
        d.type = 'renamed';
        c.type = 'renamed';
        c.oldPath = d.path;
        c.scanIt = false;
        renamed.push(c);
      }
    }

    for (const d of deleted) {
      if (d.type !== 'deleted') continue;
      index.delete(d.path);
      this.#recent.delete(d.path);
      this.#recent.set(d.path, { ...GONE, atMs: nowMs });
      await this.#dropSubscriptionsUnder(d.path);
    }
    const movedFolders: string[] = [];
    for (const r of renamed) {
      if (r.isDir && this.#hasSubfolders(r.oldPath!)) {
        this.#remember(r.oldPath!);
        await this.#dropSubscriptionsUnder(r.oldPath!);
        movedFolders.push(r.path);
      }
      this.#recent.delete(r.oldPath!);
      index.move(r.oldPath!, r.path);
      if (r.state !== undefined) index.set(r.path, r.state);
    }
    // The backend re-watches a renamed folder under its new name but keeps reporting its subfolders under the old
    // one, and late (their notifications wait for an unrelated one): watch the subfolders afresh.
    for (const folder of movedFolders) {
      for (const [name, known] of [...index.children(folder)]) {
        if (known.isDir) await this.#subscribeBelow(`${folder}/${name}`);
      }
    }
    for (const m of modified) {
      if (m.state === undefined) continue;
      if (m.scanIt) index.delete(m.path);
      index.set(m.path, m.state);
    }
    for (const c of created) if (c.type === 'created' && c.state !== undefined) index.set(c.path, c.state);

    // Contents of folders that appeared: the native backend reports only the folder itself (and watches only it).
    const found: Draft[] = [];
    if (this.#filter.recursive) {
      const folders = [...created, ...modified].filter((d) => d.type !== 'renamed' && d.scanIt);
      for (const folder of folders) await this.#adopt(folder.path, batch, found);
    }
    // A deleted entry found again inside a new folder (`mkdir sub && mv a sub/`, faster than the new folder's watch):
    // one move; a moved folder's contents are implied by the move.
    const gone = new Map<number, Draft>();
    for (const d of deleted) if (d.type === 'deleted' && d.ino !== undefined) gone.set(d.ino, d);
    if (gone.size > 0 && found.length > 0) {
      const movedDirs: string[] = [];
      for (const f of found) {
        if (movedDirs.some((dir) => f.path.startsWith(`${dir}/`))) {
          f.type = 'renamed'; // Implied by its folder's move: not reported.
          continue;
        }
        const d = f.ino === undefined ? undefined : gone.get(f.ino);
        if (d === undefined || d.isDir !== f.isDir) continue;
        gone.delete(f.ino!);
        d.type = 'renamed';
        f.type = 'renamed';
        f.oldPath = d.path;
        if (f.isDir) movedDirs.push(f.path);
      }
      for (let i = found.length - 1; i >= 0; i--)
        if (found[i]!.type === 'renamed' && !found[i]!.oldPath) found.splice(i, 1);
    }

    const out: FileEvent[] = [];
    const { types } = this.#filter;
    const push = (d: Draft): void => {
      if (!types.has(d.type)) return;
      if (!this.#rules.empty) {
        const rel = d.path.slice(this.#prefix.length);
        if (this.#rules.ignores(rel, d.isDir)) return;
      }
      if (d.type === 'renamed') {
        out.push({ type: 'renamed', path: d.path, oldPath: d.oldPath!, isDir: d.isDir, timeMs: d.timeMs });
      } else out.push({ type: d.type, path: d.path, isDir: d.isDir, timeMs: d.timeMs } as FileEvent);
    };
    for (const d of deleted) if (d.type === 'deleted') push(d);
    for (const c of created) push(c);
    for (const f of found) push(f);
    for (const m of modified) push(m);
    return out;
  }

  /**
   * Lists a folder that appeared (created, moved in, replaced): its contents are reported as created, indexed, and
   * its subfolders that the backend does not watch get a watcher of their own.
   */
  async #adopt(dir: string, batch: Map<string, Pending>, found: Draft[]): Promise<void> {
    const now = Date.now();
    const discovered: string[] = [];
    try {
      await scan(dir, {
        root: this.path,
        rules: this.#rules,
        recursive: true,
        onEntry: (e) => {
          if (batch.has(e.path) || this.#index.has(e.path)) return;
          this.#index.set(e.path, e);
          found.push({ type: 'created', path: e.path, isDir: e.isDir, timeMs: now, ino: e.ino });
          if (e.isDir) discovered.push(e.path);
        },
      });
    } catch (error) {
      // The folder went away while listed: its deletion comes in a later batch.
      if (!isGone(error)) throw error;
    }
    // The backend watches a new folder but not the subfolders already inside it (parcel-bundler/watcher#97):
    // watch each topmost unwatched subfolder, recursively.
    const covered = new Set<string>();
    for (const sub of discovered.sort((a, b) => a.length - b.length)) {
      const parent = sub.slice(0, sub.lastIndexOf('/'));
      if (covered.has(parent)) {
        covered.add(sub);
        continue;
      }
      covered.add(sub);
      await this.#subscribeBelow(sub);
    }
  }

  async #subscribeBelow(dir: string): Promise<void> {
    if (this.#closed || this.#subs.has(dir)) return;
    const native = this.#real === this.path ? dir : this.#real + dir.slice(this.path.length);
    try {
      const sub = await this.#subscribe(
        native,
        this.#onNative,
        this.#subGlobs.length ? { ignore: this.#subGlobs } : {},
      );
      if (this.#closed) await sub.unsubscribe().catch(() => undefined);
      else this.#subs.set(dir, sub);
    } catch (error) {
      const mapped = toWatchError(error, dir);
      // Gone meanwhile: its deletion is reported by the parent's watch. Anything else (the watch limit) is fatal.
      if (mapped.code !== 'E_NOT_FOUND' && mapped.code !== 'E_NOT_DIR') throw mapped;
    }
  }

  async #dropSubscriptionsUnder(path: string): Promise<void> {
    if (this.#subs.size <= 1) return;
    for (const [dir, sub] of this.#subs) {
      if (dir === this.path) continue;
      if (dir === path || dir.startsWith(`${path}/`)) {
        this.#subs.delete(dir);
        await sub.unsubscribe().catch(() => undefined);
      }
    }
  }

  #hasSubfolders(dir: string): boolean {
    for (const known of this.#index.children(dir).values()) if (known.isDir) return true;
    return false;
  }

  #remember(from: string): void {
    this.#moved.delete(from);
    this.#moved.add(from);
    if (this.#moved.size > MAX_MOVED) this.#moved.delete(this.#moved.values().next().value!);
  }

  /** True for a path below a renamed-away folder (the native backend's stale name for it). */
  #isStale(path: string): boolean {
    for (const from of this.#moved) {
      if (path.startsWith(`${from}/`) && !this.#index.has(from)) return true;
    }
    return false;
  }

  #emit(batch: FileEvent[]): void {
    const { events } = this.#listeners;
    if (events.size === 0 && this.#queues.size === 0) {
      this.#buffered.push(batch);
      return;
    }
    for (const queue of this.#queues) queue.push(batch);
    for (const listener of events) {
      try {
        listener(batch);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }

  #fail(error: WatchError): void {
    if (this.#closed) return;
    const queues = [...this.#queues];
    this.#queues.clear();
    this.#closing ??= this.#shutdown();
    for (const queue of queues) queue.fail(error);
    const listeners = [...this.#listeners.error];
    for (const listener of listeners) {
      try {
        listener(error);
      } catch (thrown) {
        rethrowLater(thrown);
      }
    }
    if (queues.length === 0 && listeners.length === 0) {
      if (this.#listeners.events.size === 0) {
        // Nobody has listened yet: the first iterator receives it.
        this.#bufferedError = error;
        this.#hasBufferedError = true;
      } else rethrowLater(error);
    }
  }

  #cancel(reason: unknown): void {
    if (this.#closed) return;
    const queues = [...this.#queues];
    this.#queues.clear();
    this.#closing ??= this.#shutdown();
    for (const queue of queues) queue.fail(reason);
  }
}
