import { stat } from 'node:fs/promises';
import { HashError } from '@fsw/errors';
import { assertAlgorithm } from './algorithms.js';
import { planSegments, validateRange } from './internal/plan.js';
import { closePool, defaultConcurrency, getPool, type JobOutcome } from './internal/pool.js';
import { hashFileAsync } from './internal/read-async.js';
import type {
  HashFileBatchesOptions,
  HashFileEntry,
  HashFilesIterOptions,
  HashFilesOptions,
  HashFilesResult,
  HashProgress,
  HashRange,
  HashResult,
} from './types.js';

/** One input path's fate: its result, or the error that kept it from being hashed (skipped by `onError`). */
interface Item {
  readonly index: number;
  readonly path: string;
  readonly value: HashResult | HashError;
}

/** Paths taken, all at once before any is hashed, from which a worker may start at once (see `Pool.prestart`). */
const PRESTART_FILES = 64;

function resolveConcurrency(value: number | undefined): number {
  if (value === undefined) return defaultConcurrency();
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new HashError('E_INVALID_ARGUMENT', `concurrency must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function rangeBytes(size: number, range: HashRange | undefined): number {
  let n = 0;
  for (const s of planSegments(size, range)) n += s.length;
  return n;
}

/** Sums the bytes a batch will hash, with a bounded number of stats in flight; unreadable paths count 0. */
async function plannedBytes(paths: readonly string[], range: HashRange | undefined): Promise<number> {
  let total = 0;
  let next = 0;
  const lane = async () => {
    while (next < paths.length) {
      const p = paths[next++]!;
      try {
        const { size } = await stat(p);
        total += rangeBytes(size, range);
      } catch {
        // The hashing pass reports this path's error through onError; progress only needs a total.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, paths.length) }, lane));
  return total;
}

function isSyncIterable(x: unknown): x is Iterable<unknown> {
  return typeof x === 'object' && x !== null && Symbol.iterator in x;
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return typeof (x as Partial<AsyncIterable<unknown>> | null)?.[Symbol.asyncIterator] === 'function';
}

function notAPath(value: unknown): HashError {
  return new HashError('E_INVALID_ARGUMENT', `paths must be strings, got ${typeof value}`);
}

/**
 * The paths of a batch, one at a time, from an array, an iterable, an async iterable, or (`batched`) an iterable or
 * async iterable of arrays. `next()` answers synchronously whenever it can: awaiting every path of a walk would
 * cost a promise round trip per file.
 */
class PathSource {
  private readonly iterator: Iterator<unknown> | AsyncIterator<unknown>;
  private readonly sync: boolean;
  private chunk: readonly unknown[] = [];
  private at = 0;
  /** True once the input ended. */
  done = false;
  /** The paths up front, when the input is an array of paths (or, batched, an array of arrays). */
  readonly known: readonly string[] | undefined;

  constructor(
    input: unknown,
    private readonly batched: boolean,
  ) {
    if (!isSyncIterable(input) && !isAsyncIterable(input)) {
      throw new HashError(
        'E_INVALID_ARGUMENT',
        batched
          ? 'batches must be an iterable or an async iterable of arrays of strings'
          : 'paths must be an array, an iterable or an async iterable of strings',
      );
    }
    if (Array.isArray(input)) {
      const flat = batched ? (input as unknown[]).flatMap((b) => this.check(b)) : (input as unknown[]);
      this.known = flat as string[];
      this.chunk = flat;
      this.iterator = [][Symbol.iterator]();
      this.sync = true;
      return;
    }
    this.known = undefined;
    this.sync = isSyncIterable(input);
    this.iterator = this.sync
      ? (input as Iterable<unknown>)[Symbol.iterator]()
      : (input as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  private check(batch: unknown): readonly unknown[] {
    if (!Array.isArray(batch)) {
      throw new HashError('E_INVALID_ARGUMENT', `each batch must be an array of paths, got ${typeof batch}`);
    }
    return batch;
  }

  /** The next path, undefined at the end; a promise only when the input must be awaited. */
  next(): string | undefined | Promise<string | undefined> {
    for (;;) {
      if (this.at < this.chunk.length) {
        const value = this.chunk[this.at++];
        if (typeof value !== 'string') throw notAPath(value);
        return value;
      }
      if (this.done || this.known !== undefined) {
        this.done = true;
        return undefined;
      }
      const step = this.iterator.next();
      if (!this.sync) {
        return (step as Promise<IteratorResult<unknown>>).then((r) => {
          const taken = this.take(r);
          return taken === null ? this.next() : taken;
        });
      }
      const taken = this.take(step as IteratorResult<unknown>);
      if (taken !== null) return taken;
    }
  }

  /** Takes one step of the iterator: a path, undefined at the end, or null when a new batch is to be read from. */
  private take(r: IteratorResult<unknown>): string | undefined | null {
    if (r.done === true) {
      this.done = true;
      return undefined;
    }
    if (!this.batched) {
      if (typeof r.value !== 'string') throw notAPath(r.value);
      return r.value;
    }
    this.chunk = this.check(r.value);
    this.at = 0;
    return null;
  }

  /** Lets an unfinished input go (a walk stops). */
  async close(): Promise<void> {
    if (!this.done) await (this.iterator as AsyncIterator<unknown>).return?.();
  }
}

interface CoreOptions extends HashFilesOptions {
  readonly skipAll?: boolean;
}

/**
 * The engine of every batch API: hashes the paths of `source` (small files on this thread, big ones and long runs
 * on the worker pool) and yields, each time some finish, the items settled since the last yield, in the order they
 * finished. A failure that `onError` does not skip is thrown; skipped ones come as items holding the error.
 */
async function* settle(source: PathSource, options: CoreOptions): AsyncGenerator<Item[], void, undefined> {
  const algorithm = assertAlgorithm(options.algorithm ?? 'blake3');
  const range = options.range;
  validateRange(range);
  const concurrency = resolveConcurrency(options.concurrency);
  const { signal, onProgress } = options;
  const onError = options.onError ?? (() => 'throw' as const);
  const interval = options.progressIntervalMs ?? 100;
  signal?.throwIfAborted();

  const known = source.known;
  const progress = {
    bytesDone: 0,
    bytesTotal: 0,
    filesDone: 0,
    filesTotal: known?.length ?? 0,
    filesFailed: 0,
  };
  let lastReport = 0;
  const report = (force: boolean) => {
    if (onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - lastReport < interval) return;
    lastReport = now;
    onProgress({ ...progress } satisfies HashProgress);
  };
  const knownTotal = onProgress !== undefined && known !== undefined;
  if (knownTotal) {
    progress.bytesTotal = await plannedBytes(known, range);
    signal?.throwIfAborted();
    report(true);
  }
  const onBytes = (n: number) => {
    progress.bytesDone += n;
    report(false);
  };
  const onPlanned = (n: number) => {
    if (!knownTotal) progress.bytesTotal += n;
  };

  // One file at a time needs no worker: hash on this thread and skip the worker start-up.
  const inline = concurrency === 1 || (known !== undefined && known.length <= 1);
  const pool = inline ? undefined : getPool();
  const batch = pool?.batch() ?? 0;
  // Cancels files hashed on this thread (all of them when inline; only fallbacks otherwise).
  const local = new AbortController();
  const onAbort = () => {
    pool?.cancelBatch(batch);
    local.abort(signal?.reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  // Settled jobs in the order they finished; `wake` resumes the loop when one lands.
  let ready: { index: number; path: string; outcome: JobOutcome }[] = [];
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const settled = (index: number, path: string, outcome: JobOutcome) => {
    inFlight--;
    ready.push({ index, path, outcome });
    const w = wake;
    wake = undefined;
    w?.();
  };
  const here = (index: number, path: string): Promise<void> =>
    hashFileAsync(path, algorithm, range, local.signal, onBytes, onPlanned).then(
      (result) => settled(index, path, { ok: true, result }),
      (error: unknown) => {
        if (local.signal.aborted) return settled(index, path, { ok: false, cancelled: true });
        const err = HashError.is(error)
          ? error
          : new HashError('E_IO', `cannot hash ${path}: ${String(error)}`, { path, cause: error });
        settled(index, path, { ok: false, error: err });
      },
    );
  // Files hashed on this thread as a fallback run `concurrency` at a time (each holds two 1 MiB buffers).
  let hereActive = 0;
  const hereWaiting: (() => void)[] = [];
  const hereLimited = async (index: number, path: string): Promise<void> => {
    if (hereActive >= concurrency) await new Promise<void>((resolve) => hereWaiting.push(resolve));
    hereActive++;
    try {
      await here(index, path);
    } finally {
      hereActive--;
      hereWaiting.shift()?.();
    }
  };
  const launch = (index: number, path: string) => {
    inFlight++;
    if (pool === undefined) {
      void here(index, path);
      return;
    }
    pool.run(concurrency, batch, path, algorithm, range, onBytes, onPlanned, (outcome) => {
      // No worker could load (a bundle without dist/internal/worker.js): hash on this thread instead.
      if ('unavailable' in outcome) void hereLimited(index, path);
      else settled(index, path, outcome);
    });
  };

  // Workers hold up to 64 files each and the pool as many again, so that none waits for the main thread.
  const limit = inline ? concurrency : concurrency * 128;
  let nextIndex = 0;
  let finished = false;
  try {
    for (;;) {
      while (!source.done && inFlight < limit) {
        let path = source.next();
        if (typeof path === 'object') path = await path;
        if (path === undefined) break;
        const index = nextIndex++;
        if (known === undefined) progress.filesTotal = nextIndex;
        // A long run (of a walk: its first directory or two): a worker may start now, while the rest comes.
        if (nextIndex === PRESTART_FILES) pool?.prestart(concurrency);
        launch(index, path);
      }
      if (ready.length === 0) {
        if (inFlight === 0) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      signal?.throwIfAborted();
      const landed = ready;
      ready = [];
      const items: Item[] = [];
      for (const { index, path, outcome } of landed) {
        progress.filesDone++;
        if (outcome.ok) {
          items.push({ index, path, value: outcome.result });
        } else if ('error' in outcome) {
          if (options.skipAll !== true && onError(outcome.error) !== 'skip') throw outcome.error;
          progress.filesFailed++;
          items.push({ index, path, value: outcome.error });
        } else {
          // Cancelled without our signal aborting: cannot happen unless the pool was closed under us.
          throw new HashError('E_IO', 'the hashing pool was closed while a batch was running');
        }
      }
      report(false);
      yield items;
    }
    finished = true;
    report(true);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) {
      pool?.cancelBatch(batch);
      local.abort(new Error('cancelled'));
      while (inFlight > 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      await source.close();
    }
  }
}

/** Puts items back in input order: `take` returns those that are next in line, holding back early finishers. */
class Reorder {
  private readonly held = new Map<number, Item>();
  private next = 0;
  take(items: readonly Item[]): Item[] {
    const out: Item[] = [];
    for (const item of items) {
      if (item.index !== this.next) {
        this.held.set(item.index, item);
        continue;
      }
      out.push(item);
      this.next++;
      for (let h = this.held.get(this.next); h !== undefined; h = this.held.get(this.next)) {
        this.held.delete(this.next++);
        out.push(h);
      }
    }
    return out;
  }
}

/**
 * Hashes many files in parallel and yields each result as it finishes (or in input order with `ordered: true`).
 * Small files (up to 1 MiB) are hashed on the calling thread with blocking reads, in slices of a few milliseconds
 * between which the event loop runs; bigger files, and long runs of small ones when a core is free, go to a pool of
 * worker threads kept warm between batches. Each thread reuses one buffer and reads a file up to 1 MiB at once.
 * `paths` may be an array, any iterable, or an async iterable (e.g. a directory walk), which is consumed only as
 * fast as the files are taken.
 *
 * A file that fails goes to `onError`: `'throw'` (the default) ends the iteration with that error, `'skip'` leaves it
 * out of the results — the callback is then the place to record it; `filesFailed` of the progress counts it.
 * Stopping the iteration early (`break`) or aborting cancels the files still queued or running.
 *
 * @throws {HashError} `E_INVALID_ARGUMENT` (unknown algorithm, bad range or concurrency), and any per-file error
 *   (`E_NOT_FOUND`, `E_PERMISSION`, `E_IS_DIR`, `E_NOT_FILE`, `E_CHANGED`, `E_IO`) that `onError` does not skip.
 * @throws `signal.reason` when the signal aborts.
 */
export async function* hashFilesIter(
  paths: Iterable<string> | AsyncIterable<string>,
  options: HashFilesIterOptions = {},
): AsyncGenerator<HashResult, void, undefined> {
  const source = new PathSource(paths, false);
  const order = options.ordered === true ? new Reorder() : undefined;
  for await (const landed of settle(source, options)) {
    for (const item of order?.take(landed) ?? landed) {
      // The consumer may abort while it holds a result: the next one must not come out.
      options.signal?.throwIfAborted();
      if (!HashError.is(item.value)) yield item.value;
    }
  }
}

/**
 * Hashes paths that come in batches — arrays, e.g. the `batches()` of a `@fsw/walk` walk — and yields, each time
 * some finish, the next stretch of entries in input order: `{ path, result }`, or `{ path, error }` for a file that
 * could not be hashed. Every path gets exactly one entry, so a caller can print errors in place (as `fsw hash`
 * does); nothing is dropped. It runs as {@link hashFilesIter} and takes the same options but `onError` and
 * `ordered`, at a lower cost per file: one `await` per batch of input and per stretch of output, not per path.
 *
 * @throws {HashError} `E_INVALID_ARGUMENT` (unknown algorithm, bad range or concurrency, a batch that is not an
 *   array of strings).
 * @throws `signal.reason` when the signal aborts.
 */
export async function* hashFileBatches(
  batches: Iterable<readonly string[]> | AsyncIterable<readonly string[]>,
  options: HashFileBatchesOptions = {},
): AsyncGenerator<HashFileEntry[], void, undefined> {
  const source = new PathSource(batches, true);
  const order = new Reorder();
  for await (const landed of settle(source, { ...options, skipAll: true })) {
    const out = order.take(landed);
    if (out.length === 0) continue;
    yield out.map(
      (item): HashFileEntry =>
        HashError.is(item.value)
          ? { path: item.path, error: item.value }
          : { path: item.path, result: item.value },
    );
  }
}

/**
 * Hashes many files in parallel (as {@link hashFilesIter}) and resolves to the results in input order.
 * Files skipped by `onError` are left out of the array and listed, with their errors, in `result.skipped`.
 *
 * @throws {HashError} as {@link hashFilesIter}: `E_INVALID_ARGUMENT`, and per-file errors `onError` does not skip.
 * @throws `signal.reason` when the signal aborts.
 */
export async function hashFiles(
  paths: Iterable<string> | AsyncIterable<string>,
  options: HashFilesOptions = {},
): Promise<HashFilesResult> {
  const skipped: HashError[] = [];
  const user = options.onError;
  const results: HashResult[] = [];
  for await (const r of hashFilesIter(paths, {
    ...options,
    ordered: true,
    onError: (e) => {
      const decision = user === undefined ? 'throw' : user(e);
      if (decision === 'skip') skipped.push(e);
      return decision;
    },
  })) {
    results.push(r);
  }
  return Object.assign(results, { skipped });
}

/**
 * Stops the worker threads that `hashFiles` and `hashFilesIter` keep warm. Optional: idle workers never keep the
 * process alive. The next batch starts new ones.
 */
export function closeHashPool(): Promise<void> {
  return closePool();
}
