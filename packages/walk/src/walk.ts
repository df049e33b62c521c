import { type Dirent, readdir as readdirCallback, readdirSync } from 'node:fs';
import {
  compareNames,
  type DirTask,
  type Item,
  kindOf,
  type Listed,
  REPLACEMENT,
  type Sink,
  STOP,
  statRoot,
  Walker,
} from './internal/core.js';
import { resolveOptions } from './internal/options.js';
import type { WalkEntry, WalkOptions } from './types.js';

/** The async iterable `walk()` returns: iterate it once; `skipped` counts the failures `onError` chose to skip. */
export interface WalkIterable extends AsyncIterable<WalkEntry> {
  /** Failures below the root that `onError` answered with `'skip'`, so far. */
  readonly skipped: number;
  /**
   * The same walk in arrays of entries, as they were read (of any size, none empty): one `await` per batch instead
   * of one per entry, for consumers that go through millions of entries. Use it instead of iterating the entries.
   */
  batches(): AsyncIterable<readonly WalkEntry[]>;
}

/** Entries handed on at once from a directory listing; also the unit between two abort checks. */
const BATCH = 1024;
/** Entries buffered ahead of the consumer before the readers pause. */
const HIGH_WATER = 2048;
/** With `syncReaddir`: how long synchronous reads may run before the event loop gets a turn. */
const TURN_MS = 8;
const WITH_TYPES = { withFileTypes: true } as const;

/** `readdir` with file types; the callback form skips the promise machinery of `fs.promises`. */
function readdir(path: string): Promise<Dirent[]> {
  return new Promise((resolve, reject) => {
    readdirCallback(path, { withFileTypes: true }, (error, dirents) =>
      error ? reject(error) : resolve(dirents),
    );
  });
}

/**
 * Walks the tree under `root` and yields its entries as they are read: the first arrive before the walk ends, and
 * memory stays bounded by the queue of directories still to read: directories are read `concurrency` at a time into a
 * bounded buffer, and the readers pause while the consumer is behind. An abort ends the walk at once, also while a
 * huge directory is being listed. The root itself is not yielded unless it is not a directory: then it is the one
 * entry (as `find` does). A symlink given as root is followed.
 *
 * Entries come in no particular order unless `sort` is set (then depth-first, siblings by name). Filters run inside
 * the crawl: a directory that is hidden, ignored or at `maxDepth` is never read.
 *
 * @param root The directory (or file) to walk.
 * @param options See {@link WalkOptions}.
 * @returns An async iterable of {@link WalkEntry}, with a live `skipped` count.
 * @throws WalkError `E_NOT_FOUND` when the root does not exist, `E_PERMISSION` when it cannot be read,
 *   `E_INVALID_ARGUMENT` for bad options; failures below the root as `onError` decides (default: thrown, e.g.
 *   `E_PERMISSION`, `E_NOT_FOUND` for an entry that vanished, `E_LOOP` for a symlink loop when following).
 *   Aborting `signal` throws `signal.reason`.
 */
export function walk(root: string, options?: WalkOptions): WalkIterable {
  const resolved = resolveOptions(options);
  const walker = new Walker(root, resolved);
  return {
    get skipped() {
      return walker.skipped;
    },
    [Symbol.asyncIterator]() {
      return entriesOf(walker)[Symbol.asyncIterator]();
    },
    batches() {
      return { [Symbol.asyncIterator]: () => run(walker)[Symbol.asyncIterator]() };
    },
  };
}

async function* entriesOf(walker: Walker): AsyncGenerator<WalkEntry, void, undefined> {
  const { signal } = walker.options;
  for await (const batch of run(walker)) {
    for (const entry of batch) {
      // An abort (even one the consumer caused from inside its loop) ends the walk at once.
      signal?.throwIfAborted();
      yield entry;
    }
  }
}

async function* run(walker: Walker): AsyncGenerator<WalkEntry[], void, undefined> {
  const { signal } = walker.options;
  signal?.throwIfAborted();
  const { stats, lstats } = await statRoot(walker.root);
  signal?.throwIfAborted();
  if (!stats.isDirectory()) {
    const entry = walker.rootEntry(stats, lstats);
    if (entry !== undefined) yield [entry];
    return;
  }
  // Depth 0 holds only the root, which is never yielded: nothing to read.
  if (walker.options.maxDepth === 0) return;
  const rootTask = walker.rootTask(stats);
  if (walker.options.sort) {
    for await (const entry of sorted(walker, rootTask)) yield [entry];
    walker.progress(true);
    return;
  }
  const crawler = new Crawler(walker);
  crawler.start(rootTask);
  try {
    for (;;) {
      const batch = crawler.take();
      if (batch !== undefined) {
        yield batch;
        continue;
      }
      if (crawler.error !== undefined) throw crawler.error.value;
      if (crawler.finished) {
        walker.progress(true);
        return;
      }
      await crawler.changed();
    }
  } finally {
    crawler.stop();
  }
}

/** `promise`, or `signal.reason` as soon as the signal aborts (the work itself runs on, its result unused). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Depth-first with siblings in name order: each directory is listed whole, sorted, then walked in that order. */
async function* sorted(walker: Walker, task: DirTask): AsyncGenerator<WalkEntry, void, undefined> {
  const { signal } = walker.options;
  signal?.throwIfAborted();
  if (walker.options.ignoreFiles.length > 0) await walker.loadIgnores(task);
  let listed: Listed[];
  try {
    listed = await abortable(walker.list(task), signal);
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    const failure = walker.readError(task, error);
    if (task.isRoot) throw failure;
    walker.fail(failure);
    return;
  }
  const items = await abortable(Promise.resolve(walker.process(task, listed)), signal);
  items.sort(compareNames);
  for (const item of items) {
    signal?.throwIfAborted();
    if (item.entry !== undefined) yield item.entry;
    if (item.child !== undefined) yield* sorted(walker, item.child);
  }
}

/**
 * Reads directories with bounded concurrency into a bounded buffer the consumer drains. Directories wait on a stack,
 * so the walk goes deep before wide and the stack stays small.
 */
class Crawler implements Sink {
  private readonly walker: Walker;
  private readonly stack: DirTask[] = [];
  private buffer: WalkEntry[] = [];
  private active = 0;
  private stopped = false;
  private wakeConsumer: (() => void) | undefined;
  private readonly wakeReaders: (() => void)[] = [];
  private readonly onAbort: () => void;
  /** When the current run of synchronous reads (`syncReaddir`) began. */
  private turnStart = 0;
  /** The turn of the event loop the readers wait for, shared: one turn for all, not one per reader. */
  private turn: Promise<void> | undefined;
  error: { value: unknown } | undefined;

  constructor(walker: Walker) {
    this.walker = walker;
    this.onAbort = () => this.failWith(walker.options.signal?.reason);
    walker.options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  get finished(): boolean {
    return this.active === 0 && this.stack.length === 0 && this.buffer.length === 0;
  }

  start(task: DirTask): void {
    this.stack.push(task);
    this.pump();
  }

  /** The buffered entries, if any; readers waiting for room resume. */
  take(): WalkEntry[] | undefined {
    if (this.error !== undefined || this.buffer.length === 0) return undefined;
    const batch = this.buffer;
    this.buffer = [];
    for (const wake of this.wakeReaders.splice(0)) wake();
    return batch;
  }

  /** Resolves when entries arrive, the walk ends or fails. */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeConsumer = resolve;
    });
  }

  stop(): void {
    this.stopped = true;
    this.walker.options.signal?.removeEventListener('abort', this.onAbort);
    for (const wake of this.wakeReaders.splice(0)) wake();
  }

  private notify(): void {
    const wake = this.wakeConsumer;
    this.wakeConsumer = undefined;
    wake?.();
  }

  private failWith(value: unknown): void {
    if (this.error === undefined) this.error = { value };
    this.stop();
    this.notify();
  }

  private pump(): void {
    while (!this.stopped && this.active < this.walker.options.concurrency && this.stack.length > 0) {
      const task = this.stack.pop() as DirTask;
      this.active++;
      this.read(task).then(
        () => {
          this.active--;
          this.pump();
          this.notify();
        },
        (error: unknown) => {
          this.active--;
          if (error !== STOP) this.failWith(error);
          this.notify();
        },
      );
    }
  }

  private async read(task: DirTask): Promise<void> {
    const { walker } = this;
    if (walker.options.ignoreFiles.length > 0) await walker.loadIgnores(task);
    if (this.stopped) throw STOP;
    if (task.rawPrefix !== undefined) {
      // A directory whose path is not UTF-8: rare, listed whole as bytes.
      let listed: Listed[];
      try {
        listed = await walker.list(task);
      } catch (error) {
        this.readFailed(task, error);
        return;
      }
      await this.hand(task, listed);
      return;
    }
    let dirents: Dirent[];
    try {
      dirents = walker.options.syncReaddir ? await this.readNow(task.path) : await readdir(task.path);
    } catch (error) {
      this.readFailed(task, error);
      return;
    }
    if (this.stopped) throw STOP;
    // Hand the listing on in batches, so that the buffer limit and aborts apply within a huge directory too.
    let lossy = false;
    if (!walker.perEntryIo) {
      for (let i = 0; i < dirents.length; i += BATCH) {
        if (this.stopped) throw STOP;
        if (walker.scan(task, dirents, i, Math.min(i + BATCH, dirents.length), this)) lossy = true;
        this.pump();
        this.notify();
        await this.room();
      }
    } else {
      let batch: Listed[] = [];
      for (let i = 0; i < dirents.length; i++) {
        const d = dirents[i] as Dirent;
        const name = d.name;
        if (name.includes(REPLACEMENT)) lossy = true;
        else batch.push({ name, raw: undefined, kind: kindOf(d) });
        if (batch.length >= BATCH) {
          await this.hand(task, batch);
          batch = [];
        }
      }
      if (batch.length > 0) await this.hand(task, batch);
    }
    if (lossy) await this.hand(task, await walker.lossyNames(task));
  }

  /**
   * `readdirSync`, after a turn of the event loop once the synchronous reads have run {@link TURN_MS}: a thread-pool
   * round trip per directory costs several times the system call, and most directories of a large tree are small.
   */
  private async readNow(path: string): Promise<Dirent[]> {
    if (performance.now() - this.turnStart >= TURN_MS) {
      this.turn ??= new Promise<void>((resolve) =>
        setImmediate(() => {
          this.turn = undefined;
          this.turnStart = performance.now();
          resolve();
        }),
      );
      await this.turn;
      if (this.stopped) throw STOP;
    }
    return readdirSync(path, WITH_TYPES);
  }

  /** {@link Sink}: an entry of the fast path. */
  entry(entry: WalkEntry): void {
    this.buffer.push(entry);
  }

  /** {@link Sink}: a directory of the fast path, read after the current batch. */
  child(task: DirTask): void {
    this.stack.push(task);
  }

  /** Waits while the buffer is full. */
  private async room(): Promise<void> {
    while (this.buffer.length >= HIGH_WATER) {
      await new Promise<void>((resolve) => this.wakeReaders.push(resolve));
      if (this.stopped) throw STOP;
    }
  }

  private readFailed(task: DirTask, error: unknown): void {
    if (this.stopped) throw STOP;
    const failure = this.walker.readError(task, error);
    if (task.isRoot) throw failure;
    this.walker.fail(failure);
  }

  /** Filters one batch, queues its directories, buffers its entries and waits while the buffer is full. */
  private async hand(task: DirTask, listed: Listed[]): Promise<void> {
    if (this.stopped) throw STOP;
    let items = this.walker.process(task, listed);
    if (items instanceof Promise) items = await items;
    if (this.stopped) throw STOP;
    this.add(items);
    await this.room();
  }

  private add(items: readonly Item[]): void {
    let children = false;
    for (const item of items) {
      if (item.entry !== undefined) this.buffer.push(item.entry);
      if (item.child !== undefined) {
        this.stack.push(item.child);
        children = true;
      }
    }
    if (children) this.pump();
    this.notify();
  }
}
