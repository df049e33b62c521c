import { stat } from 'node:fs/promises';
import { HashError } from '@fsw/errors';
import { assertAlgorithm } from './algorithms.js';
import { planSegments, validateRange } from './internal/plan.js';
import { closePool, defaultConcurrency, getPool, type JobOutcome } from './internal/pool.js';
import { hashFileAsync } from './internal/read-async.js';
import type {
  HashFilesIterOptions,
  HashFilesOptions,
  HashFilesResult,
  HashProgress,
  HashRange,
  HashResult,
} from './types.js';

type Settled = { readonly index: number; readonly outcome: JobOutcome };

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

function isSyncIterable(x: unknown): x is Iterable<string> {
  return typeof x === 'object' && x !== null && Symbol.iterator in x;
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
  const algorithm = assertAlgorithm(options.algorithm ?? 'blake3');
  if (
    !isSyncIterable(paths) &&
    typeof (paths as Partial<AsyncIterable<string>>)?.[Symbol.asyncIterator] !== 'function'
  ) {
    throw new HashError(
      'E_INVALID_ARGUMENT',
      'paths must be an array, an iterable or an async iterable of strings',
    );
  }
  const range = options.range;
  validateRange(range);
  const concurrency = resolveConcurrency(options.concurrency);
  const { signal, onProgress } = options;
  const onError = options.onError ?? (() => 'throw' as const);
  const ordered = options.ordered === true;
  const interval = options.progressIntervalMs ?? 100;
  signal?.throwIfAborted();

  const isArray = Array.isArray(paths);
  const progress = {
    bytesDone: 0,
    bytesTotal: 0,
    filesDone: 0,
    filesTotal: isArray ? (paths as readonly string[]).length : 0,
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
  const knownTotal = onProgress !== undefined && isArray;
  if (knownTotal) {
    progress.bytesTotal = await plannedBytes(paths as readonly string[], range);
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
  const inline = concurrency === 1 || (isArray && (paths as readonly string[]).length <= 1);
  const pool = inline ? undefined : getPool();
  const batch = pool?.batch() ?? 0;
  // Cancels files hashed on this thread (all of them when inline; only fallbacks otherwise).
  const local = new AbortController();
  const onAbort = () => {
    pool?.cancelBatch(batch);
    local.abort(signal?.reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const here = (index: number, path: string): Promise<Settled> =>
    hashFileAsync(path, algorithm, range, local.signal, onBytes, onPlanned).then(
      (result): Settled => ({ index, outcome: { ok: true, result } }),
      (error: unknown): Settled => {
        if (local.signal.aborted) return { index, outcome: { ok: false, cancelled: true } };
        const err = HashError.is(error)
          ? error
          : new HashError('E_IO', `cannot hash ${path}: ${String(error)}`, { path, cause: error });
        return { index, outcome: { ok: false, error: err } };
      },
    );
  // Files hashed on this thread as a fallback run `concurrency` at a time (each holds two 1 MiB buffers).
  let hereActive = 0;
  const hereWaiting: (() => void)[] = [];
  const hereLimited = async (index: number, path: string): Promise<Settled> => {
    if (hereActive >= concurrency) await new Promise<void>((resolve) => hereWaiting.push(resolve));
    hereActive++;
    try {
      return await here(index, path);
    } finally {
      hereActive--;
      hereWaiting.shift()?.();
    }
  };
  const start = (index: number, path: string): Promise<Settled> => {
    if (pool === undefined) return here(index, path);
    return pool.run(concurrency, batch, path, algorithm, range, onBytes, onPlanned).then((outcome) =>
      // No worker could load (a bundle without dist/internal/worker.js): hash on this thread instead.
      'unavailable' in outcome ? hereLimited(index, path) : { index, outcome },
    );
  };

  // Workers hold up to 32 files each and the pool as many again, so that none waits for the main thread.
  const limit = inline ? concurrency : concurrency * 64;
  // Settled jobs in the order they finished; `wake` resumes the loop when one lands.
  const ready: Settled[] = [];
  const all = new Set<Promise<void>>();
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const launch = (index: number, path: string) => {
    inFlight++;
    const p = start(index, path).then((settled) => {
      inFlight--;
      ready.push(settled);
      all.delete(p);
      const w = wake;
      wake = undefined;
      w?.();
    });
    all.add(p);
  };
  const held = new Map<number, HashResult | null>();
  let nextOut = 0;
  let nextIndex = 0;
  const iterator: Iterator<string> | AsyncIterator<string> = isSyncIterable(paths)
    ? paths[Symbol.iterator]()
    : (paths as AsyncIterable<string>)[Symbol.asyncIterator]();
  let exhausted = false;
  let finished = false;
  try {
    for (;;) {
      while (!exhausted && inFlight < limit) {
        const next = await iterator.next();
        if (next.done === true) {
          exhausted = true;
          break;
        }
        if (typeof next.value !== 'string') {
          throw new HashError('E_INVALID_ARGUMENT', `paths must be strings, got ${typeof next.value}`);
        }
        const index = nextIndex++;
        if (!isArray) progress.filesTotal = nextIndex;
        launch(index, next.value);
      }
      if (ready.length === 0) {
        if (inFlight === 0) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      const { index, outcome } = ready.shift()!;
      signal?.throwIfAborted();
      progress.filesDone++;
      let value: HashResult | null;
      if (outcome.ok) {
        value = outcome.result;
      } else if ('error' in outcome) {
        if (onError(outcome.error) !== 'skip') throw outcome.error;
        progress.filesFailed++;
        value = null;
      } else {
        // Cancelled without our signal aborting: cannot happen unless the pool was closed under us.
        throw new HashError('E_IO', 'the hashing pool was closed while a batch was running');
      }
      report(false);
      if (!ordered) {
        if (value !== null) yield value;
        continue;
      }
      held.set(index, value);
      for (let v = held.get(nextOut); v !== undefined; v = held.get(nextOut)) {
        held.delete(nextOut++);
        if (v !== null) yield v;
      }
    }
    finished = true;
    report(true);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) {
      pool?.cancelBatch(batch);
      local.abort(new Error('cancelled'));
      await Promise.allSettled(all);
      if (!exhausted) await (iterator as AsyncIterator<string>).return?.();
    }
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
