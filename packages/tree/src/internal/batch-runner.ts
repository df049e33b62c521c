import { availableParallelism } from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import { TreeError } from '@fsw/errors';
import { createHasher } from '@fsw/hash';
import {
  type CheckoutJob,
  checkoutFilesSync,
  type FileFacts,
  type JobFailure,
  type JobState,
  type StoreOutcome,
  type StoreTarget,
  SYNC_MAX,
  storeFilesSync,
} from './file-jobs.js';

/** A batch of file jobs for a worker. */
export type BatchRequest =
  | {
      readonly id: number;
      readonly kind: 'store';
      readonly target: StoreTarget | undefined;
      readonly paths: string[];
    }
  | { readonly id: number; readonly kind: 'checkout'; readonly jobs: CheckoutJob[] };

/** A worker's answer: one outcome per job, or `crash` when the batch itself could not run. */
export type BatchReply =
  | { readonly id: number; readonly results: unknown[]; readonly crash?: undefined }
  | { readonly id: number; readonly crash: string };

/** Runs batches of small-file jobs with blocking calls, on the main thread or in worker threads. */
export interface BatchRunner {
  /** Batches worth having in flight at once. */
  readonly inFlight: number;
  /** Files per batch. */
  readonly batchSize: number;
  /** Whether this runner uses worker threads. */
  readonly threaded: boolean;
  /** Reads, hashes and (with a target) stores files. */
  store(target: StoreTarget | undefined, paths: string[]): Promise<StoreOutcome[]>;
  /** Writes checked-out files. */
  checkout(jobs: CheckoutJob[]): Promise<(FileFacts | JobFailure)[]>;
  close(): Promise<void>;
}

/** Jobs at which a runner chosen automatically moves from the main thread to worker threads. */
export const WORKERS_AFTER = 2000;

/** The default number of worker threads: one per core, at most 4 (creating files does not scale further). */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

let mainState: Promise<JobState> | undefined;
function mainThreadState(): Promise<JobState> {
  mainState ??= createHasher('blake3').then((hasher) => ({
    buffer: Buffer.allocUnsafe(SYNC_MAX),
    hasher,
    madeDirs: new Set<string>(),
  }));
  return mainState;
}

/**
 * Runs each batch on the main thread after one turn of the event loop: batches are small (a few ms of blocking
 * calls), so progress, abort and timers stay live between them.
 */
export function mainThreadRunner(): BatchRunner {
  return {
    inFlight: 1,
    batchSize: 32,
    threaded: false,
    async store(target, paths) {
      const state = await mainThreadState();
      await nextTurn();
      return storeFilesSync(state, target, paths);
    },
    async checkout(jobs) {
      const state = await mainThreadState();
      await nextTurn();
      return checkoutFilesSync(state, jobs);
    },
    async close() {},
  };
}

interface Slot {
  readonly worker: Worker;
  readonly pending: Map<number, { resolve: (r: unknown[]) => void; reject: (e: unknown) => void }>;
}

/** Runs batches in `count` worker threads (started now, stopped by `close`); each batch goes to the least busy one. */
export async function workerRunner(count: number): Promise<BatchRunner> {
  const { Worker } = await import('node:worker_threads');
  const url = new URL('./batch-worker.js', import.meta.url);
  const slots: Slot[] = [];
  let nextId = 1;
  const fail = (slot: Slot, cause: unknown) => {
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    const error = new TreeError('E_IO', `a file worker thread failed: ${String(cause)}`, { cause });
    for (const p of slot.pending.values()) p.reject(error);
    slot.pending.clear();
  };
  for (let i = 0; i < count; i++) {
    // No execArgv: flags about the main script (`-e`, `--input-type`) would stop a worker from starting.
    const worker = new Worker(url, { name: '@fsw/tree', execArgv: [] });
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (reply: BatchReply) => {
      const p = slot.pending.get(reply.id);
      if (p === undefined) return;
      slot.pending.delete(reply.id);
      if (reply.crash !== undefined) p.reject(new TreeError('E_IO', `a file batch failed: ${reply.crash}`));
      else p.resolve(reply.results);
    });
    worker.on('error', (error) => fail(slot, error));
    worker.on('exit', (code) => fail(slot, `exit code ${code}`));
    slots.push(slot);
  }
  const send = (make: (id: number) => BatchRequest): Promise<unknown[]> => {
    let best: Slot | undefined;
    for (const s of slots) if (best === undefined || s.pending.size < best.pending.size) best = s;
    if (best === undefined) return Promise.reject(new TreeError('E_IO', 'no file worker thread is running'));
    const id = nextId++;
    const slot = best;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage(make(id));
    });
  };
  return {
    inFlight: count * 2,
    batchSize: 128,
    threaded: true,
    store: (target, paths) => send((id) => ({ id, kind: 'store', target, paths })) as Promise<StoreOutcome[]>,
    checkout: (jobs) => send((id) => ({ id, kind: 'checkout', jobs })) as Promise<(FileFacts | JobFailure)[]>,
    async close() {
      const all = slots.splice(0);
      await Promise.all(
        all.map((s) => {
          s.worker.removeAllListeners('exit');
          return s.worker.terminate();
        }),
      );
    },
  };
}

/**
 * Picks the runner for `jobs` files: `workers` threads when given (0: the main thread), else worker threads only for
 * more than {@link WORKERS_AFTER} files.
 */
export function runnerFor(jobs: number, workers: number | undefined): Promise<BatchRunner> {
  const count = workers ?? (jobs > WORKERS_AFTER ? defaultWorkers() : 0);
  return count > 0 ? workerRunner(count) : Promise.resolve(mainThreadRunner());
}
