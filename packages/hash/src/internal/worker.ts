import { parentPort, workerData } from 'node:worker_threads';
import type { HashAlgorithm } from '../types.js';
import { CHUNK_BYTES } from './file-checks.js';
import { engineFor } from './node-engines.js';
import {
  CANCEL_SLOTS,
  doneColumns,
  type JobBatch,
  type JobMessage,
  type ReplyBatch,
  type ReplyMessage,
  serializeError,
  type WorkerData,
} from './protocol.js';
import type { RawHasher } from './raw.js';
import { hashFileSync } from './read-sync.js';

// One worker of the pool: hashes files with blocking reads, one at a time, with one buffer and one hasher per
// algorithm reused for every file.
const port = parentPort;
if (port === null) throw new Error('@fsw/hash worker must run in a worker thread');
const flags = new Int32Array((workerData as WorkerData).cancel);
const buf = Buffer.allocUnsafe(CHUNK_BYTES);
const hashers = new Map<HashAlgorithm, { hasher: RawHasher; engine: string }>();
// Report progress of a large file every few MiB, not on every chunk.
const REPORT_BYTES = 16 << 20;

async function hasherFor(algorithm: HashAlgorithm) {
  let h = hashers.get(algorithm);
  if (h === undefined) {
    const engine = engineFor(algorithm);
    h = { hasher: await engine.create(algorithm), engine: engine.name };
    hashers.set(algorithm, h);
  }
  return h;
}

const queue: JobMessage[] = [];
let running = false;
let other: ReplyMessage[] = [];
let done = doneColumns();
let pending = 0;
let oldest = 0;
// Replies wait at most this long for company: long enough to batch small files, short enough not to hold a result
// back while a big file hashes.
const MAX_HOLD_MS = 5;
const LOW_WATER = 40;

function flush(): void {
  if (pending === 0) return;
  const batch: ReplyBatch = { done, other };
  port!.postMessage(batch);
  other = [];
  done = doneColumns();
  pending = 0;
}

/** Queues one reply; sends the lot when it is time (see below). */
function post(m: ReplyMessage | null): void {
  if (pending++ === 0) oldest = performance.now();
  if (m !== null) other.push(m);
  // Reply early when few jobs are left, so that the main thread's refill arrives before the queue runs dry.
  if (
    m?.type === 'bytes' ||
    queue.length === LOW_WATER ||
    pending >= 32 ||
    performance.now() - oldest >= MAX_HOLD_MS
  ) {
    flush();
  }
}

async function drain(): Promise<void> {
  running = true;
  for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
    const cancelled = () => Atomics.load(flags, job!.batch % CANCEL_SLOTS) === job!.batch;
    let unreported = 0;
    let planned: number | undefined;
    if (cancelled()) {
      post({ type: 'cancelled', id: job.id, bytes: 0 });
      continue;
    }
    try {
      const { hasher, engine } = hashers.get(job.algorithm) ?? (await hasherFor(job.algorithm));
      const id = job.id;
      const result = hashFileSync(
        job.path,
        job.algorithm,
        job.range,
        hasher,
        engine,
        buf,
        (n) => {
          if (pending > 0 && performance.now() - oldest >= MAX_HOLD_MS) flush();
          unreported += n;
          if (unreported >= REPORT_BYTES) {
            post({ type: 'bytes', id, bytes: unreported });
            unreported = 0;
          }
        },
        cancelled,
        (bytes) => {
          // A big file announces its size at once (progress totals); a small one with its result.
          if (bytes >= REPORT_BYTES) post({ type: 'bytes', id, bytes: 0, planned: bytes });
          else planned = bytes;
        },
      );
      // null (too big) cannot happen: no size limit is passed here.
      if (result === undefined || result === null) post({ type: 'cancelled', id, bytes: unreported });
      else {
        done.ids.push(id);
        done.bytes.push(unreported);
        done.planned.push(planned ?? -1);
        done.sizes.push(result.size);
        done.engines.push(result.engine);
        done.digests = done.digests === '' ? result.digest : `${done.digests} ${result.digest}`;
        post(null);
      }
    } catch (e) {
      post({ type: 'error', id: job.id, bytes: unreported, error: serializeError(e) });
    }
  }
  flush();
  running = false;
}

// An empty batch tells the pool that this worker loaded; a worker that fails before it is not retried.
port.postMessage({ done: doneColumns(), other: [] } satisfies ReplyBatch);

port.on('message', (jobs: JobBatch) => {
  queue.push(...jobs);
  if (!running) void drain();
});
