import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Job } from './file.js';
import {
  type BatchMessage,
  type BatchReply,
  CROSS_DEVICE,
  deserializeError,
  NO_REPLACE,
  SYMLINK,
  type WorkerInit,
} from './protocol.js';
import { sliced } from './slices.js';
import { PLACED, type SyncConfig, SyncCopier } from './sync-file.js';

/** What the small-file lane needs from the run. */
export interface SmallLane {
  /** Files under the streaming threshold, and symlinks. */
  readonly jobs: readonly Job[];
  readonly stop: AbortSignal;
  /** Worker threads at most (the `concurrency` option). */
  readonly maxWorkers: number;
  readonly config: SyncConfig;
  /** A job ended: placed, or kept because its destination appeared since the plan. */
  counted(job: Job, placed: boolean): void;
  /** A job failed (its temp file is already gone). */
  failed(error: unknown, job: Job): void;
  /** Stops the run with `error`, whatever `onError` says: work was lost (a worker thread died mid-batch). */
  abandon(error: Error): void;
  /** Files placed since the last call, with their bytes: one progress update per slice or batch. */
  progress(files: number, bytes: number, last: string | undefined): void;
}

/**
 * Below this many small files (and {@link WORKER_MIN_BYTES}) the main thread copies them alone: a worker thread
 * costs ~30-50 ms of start-up, the time of about a thousand small files or of some 30 MB of copying.
 */
const WORKER_MIN_JOBS = 2000;
const WORKER_MIN_BYTES = 64 * 1024 * 1024;
/** Jobs per message to a worker: a few milliseconds of work, so that progress and a stop stay prompt. */
const BATCH = 128;
const WORKER_URL = new URL('./copy-worker.js', import.meta.url);

/** Temp-name token of lane `n` (hex, as the temp names' pattern expects): the main thread is lane 0. */
function laneToken(config: SyncConfig, n: number): string {
  return `${config.token}${n.toString(16).padStart(2, '0')}`;
}

/** Worker threads to add to the main thread: one per spare core, within `maxWorkers`. */
function workerCount(lane: SmallLane): number {
  const fromEnv = process.env.FSW_COPY_WORKERS;
  const cores = fromEnv !== undefined ? Number(fromEnv) + 1 : availableParallelism();
  if (lane.jobs.length < WORKER_MIN_JOBS) {
    let bytes = 0;
    for (const job of lane.jobs) bytes += job.size;
    if (bytes < WORKER_MIN_BYTES) return 0;
  }
  return Math.max(0, Math.min(lane.maxWorkers - 1, cores - 1));
}

/**
 * Copies the small jobs with blocking system calls: on the main thread in slices of a few milliseconds, and on
 * many files also in worker threads fed batches from the same queue. Every job ends counted or failed; a stop
 * (abort or fatal failure) is seen between two files.
 */
export async function runSmallJobs(lane: SmallLane): Promise<void> {
  const { jobs, stop } = lane;
  if (jobs.length === 0) return;
  // Workers take batches from the front, the main thread takes files from the back: they work in different
  // directories (no contention on a directory's lock) until they meet.
  let next = 0;
  let end = jobs.length;
  const copier = new SyncCopier({ ...lane.config, token: laneToken(lane.config, 0) });
  let files = 0;
  let bytes = 0;
  let last: string | undefined;

  const flag = new Int32Array(new SharedArrayBuffer(4));
  const onStop = () => Atomics.store(flag, 0, 1);
  stop.addEventListener('abort', onStop, { once: true });
  const workers = Array.from({ length: workerCount(lane) }, (_, i) =>
    workerLane(lane, { config: { ...lane.config, token: laneToken(lane.config, i + 1) }, stop: flag }, () => {
      if (next >= end) return undefined;
      const from = next;
      next = Math.min(end, next + BATCH);
      return jobs.slice(from, next);
    }),
  );
  try {
    await Promise.all([
      sliced(
        stop,
        () => {
          if (end <= next) return false;
          const job = jobs[--end] as Job;
          copier.crossDevice = job.root.crossDevice;
          try {
            const placed = copier.run(job) === PLACED;
            lane.counted(job, placed);
            if (placed) {
              files++;
              bytes += job.size;
              last = job.dest;
            }
          } catch (error) {
            lane.failed(error, job);
          }
          if (copier.crossDevice) job.root.crossDevice = true;
          return true;
        },
        () => {
          if (files === 0) return;
          lane.progress(files, bytes, last);
          files = 0;
          bytes = 0;
        },
      ),
      ...workers,
    ]);
  } finally {
    stop.removeEventListener('abort', onStop);
  }
}

function pack(batch: readonly Job[]): BatchMessage {
  const numbers = new Float64Array(batch.length * 3);
  const flags = new Uint8Array(batch.length);
  batch.forEach((job, i) => {
    numbers[3 * i] = job.size;
    numbers[3 * i + 1] = job.mode;
    numbers[3 * i + 2] = job.mtimeMs;
    flags[i] =
      (job.kind === 'symlink' ? SYMLINK : 0) |
      (job.noReplace ? NO_REPLACE : 0) |
      (job.root.crossDevice ? CROSS_DEVICE : 0);
  });
  return { src: batch.map((j) => j.src), dest: batch.map((j) => j.dest), numbers, flags };
}

/** Batches sent to a worker ahead of its answers: it never waits for the main thread to finish a slice. */
const IN_FLIGHT = 2;

/**
 * One worker thread taking batches until the queue is empty or the run stops. A worker that fails to start
 * leaves its share to the main thread; one that dies mid-batch stops the run (what it did with its batches is
 * unknown, so they can be neither counted nor redone).
 */
async function workerLane(lane: SmallLane, init: WorkerInit, take: () => Job[] | undefined): Promise<void> {
  let worker: Worker;
  try {
    worker = new Worker(WORKER_URL, { workerData: init });
  } catch {
    return;
  }
  let onReady: ((ok: boolean) => void) | undefined;
  const ready = new Promise<boolean>((resolve) => (onReady = resolve));
  // Answers come in the order the batches were sent.
  const waiting: ((reply: BatchReply | Error) => void)[] = [];
  worker.on('message', (m: BatchReply | 'ready') => {
    if (m === 'ready') onReady?.(true);
    else waiting.shift()?.(m);
  });
  const dead = (e: Error) => {
    onReady?.(false);
    for (const w of waiting.splice(0)) w(e);
  };
  worker.on('error', dead);
  worker.on('exit', (code) => dead(new Error(`copy worker exited with code ${code}`)));
  const send = (batch: Job[]) => {
    const reply = new Promise<BatchReply | Error>((resolve) => waiting.push(resolve));
    worker.postMessage(pack(batch));
    return { batch, reply };
  };
  try {
    if (!(await ready)) return;
    const pending: { batch: Job[]; reply: Promise<BatchReply | Error> }[] = [];
    const fill = () => {
      while (pending.length < IN_FLIGHT && !lane.stop.aborted) {
        const batch = take();
        if (batch === undefined) return;
        pending.push(send(batch));
      }
    };
    fill();
    for (let sent = pending.shift(); sent !== undefined; sent = pending.shift()) {
      const { batch } = sent;
      const reply = await sent.reply;
      if (reply instanceof Error) {
        lane.abandon(reply);
        return;
      }
      for (const i of reply.crossed) (batch[i] as Job).root.crossDevice = true;
      const done = reply.error === undefined ? reply.ran : reply.ran - 1;
      let files = 0;
      let bytes = 0;
      let last: string | undefined;
      for (let i = 0; i < done; i++) {
        const job = batch[i] as Job;
        const placed = reply.placed[i] === 1;
        lane.counted(job, placed);
        if (placed) {
          files++;
          bytes += job.size;
          last = job.dest;
        }
      }
      if (files > 0) lane.progress(files, bytes, last);
      if (reply.error !== undefined) {
        lane.failed(deserializeError(reply.error), batch[done] as Job);
        // The rest of the batch, unless the failure stopped the run.
        if (reply.ran < batch.length && !lane.stop.aborted) pending.push(send(batch.slice(reply.ran)));
      }
      fill();
    }
  } finally {
    await worker.terminate();
  }
}
