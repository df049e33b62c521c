import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { HashError } from '@fsw/errors';
import type { HashAlgorithm, HashRange, HashResult } from '../types.js';
import { CHUNK_BYTES, takeBuffer } from './file-checks.js';
import { engineFor } from './node-engines.js';
import {
  CANCEL_SLOTS,
  type DoneColumns,
  deserializeError,
  type JobMessage,
  type ReplyBatch,
  type ReplyMessage,
  type WorkerData,
} from './protocol.js';
import type { RawHasher } from './raw.js';
import { hashFileSync } from './read-sync.js';
import { SpareCoreProbe } from './spare-core.js';

/** The settled outcome of one job; `cancelled` when its batch was cancelled before or while it ran. */
export type JobOutcome =
  | { readonly ok: true; readonly result: HashResult }
  | { readonly ok: false; readonly error: HashError }
  | { readonly ok: false; readonly cancelled: true }
  /** No worker thread could start (e.g. a bundle without `worker.js`): the caller hashes the file itself. */
  | { readonly ok: false; readonly unavailable: true };

interface Pending {
  readonly path: string;
  readonly algorithm: HashAlgorithm;
  readonly onBytes: (n: number) => void;
  readonly onPlanned: (n: number) => void;
  readonly resolve: (o: JobOutcome) => void;
}

interface QueuedJob {
  readonly message: JobMessage;
  readonly pending: Pending;
}

interface LaneHasher {
  readonly hasher: RawHasher;
  readonly engine: string;
}

interface Slot {
  readonly worker: Worker;
  /** Set by the worker's first message (it sends one when loaded). */
  started: boolean;
  /** Jobs sent to this worker and not settled yet. */
  readonly pending: Map<number, Pending>;
}

/** Jobs a worker holds at most: enough to never wait for the main thread, few enough to balance big files. */
const WORKER_QUEUE = 64;
/** Jobs sent to a worker in one message at most, so that several workers share a long queue. */
const WORKER_SEND = 32;

const WORKER_URL = new URL('./worker.js', import.meta.url);

/**
 * The main thread hashes queued files itself, with blocking reads, in slices of this many milliseconds between
 * which the event loop runs. Small files from the page cache take microseconds each, and hashing them here costs
 * far less than a worker's start-up and the messages to and from it.
 */
const LANE_SLICE_MS = 4;
/**
 * The slice while workers run: the main thread refills them only between slices, and a worker holds a few
 * milliseconds of small files, so a long slice would leave it idle.
 */
const LANE_SLICE_SHARED_MS = 1;
/** Files planned to hash more than this (one read) are left to the worker threads. */
const LANE_MAX_BYTES = CHUNK_BYTES;
/**
 * Workers start only once the main thread has hashed this long with files still queued: a worker costs ~90 ms of
 * CPU to start, and a short batch is done before it would be ready.
 */
const LANE_ALONE_MS = 15;

/**
 * The parent's Node options minus those about the main script (`-e`, `--input-type`...), which a worker inherits by
 * default and which make it fail to start (`node --input-type=module -e ...` would otherwise break every batch).
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print' || a === '--input-type') {
      i++;
      continue;
    }
    if (a.startsWith('--input-type=') || a.startsWith('--eval=') || a.startsWith('--print=')) continue;
    out.push(a);
  }
  return out;
}

/**
 * A pool of hashing worker threads, created on first use and kept warm for later batches. Idle workers are
 * unref'd, so they never keep the process alive; busy ones are ref'd, so a pending batch does.
 */
class Pool {
  private readonly slots: Slot[] = [];
  private readonly cancel = new SharedArrayBuffer(CANCEL_SLOTS * 4);
  private readonly flags = new Int32Array(this.cancel);
  private nextId = 1;
  private nextBatch = 1;

  /** A new batch number; cancel it with {@link cancelBatch}. */
  batch(): number {
    const b = this.nextBatch++;
    // Clear a stale mark left in this slot by a batch CANCEL_SLOTS batches ago.
    Atomics.store(this.flags, b % CANCEL_SLOTS, 0);
    return b;
  }

  /** Tells the workers to drop queued jobs of `batch` and to stop the one they are hashing. */
  cancelBatch(batch: number): void {
    Atomics.store(this.flags, batch % CANCEL_SLOTS, batch);
    const kept: QueuedJob[] = [];
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const q = this.queue[i]!;
      if (q.message.batch === batch) q.pending.resolve({ ok: false, cancelled: true });
      else kept.push(q);
    }
    this.queue.splice(0, this.queue.length, ...kept);
    this.queueHead = 0;
    for (const q of this.bigQueue.splice(0)) {
      if (q.message.batch === batch) q.pending.resolve({ ok: false, cancelled: true });
      else this.bigQueue.push(q);
    }
  }

  private grow(size: number): void {
    while (this.slots.length < size) {
      const data: WorkerData = { cancel: this.cancel };
      // Loaded here, not at import: a process that never starts a worker (one file) skips ~5 ms.
      const { Worker } = process.getBuiltinModule('node:worker_threads');
      const worker: Worker = new Worker(WORKER_URL, {
        workerData: data,
        name: '@fsw/hash',
        execArgv: workerExecArgv(),
      });
      const slot: Slot = { worker, pending: new Map(), started: false };
      worker.on('message', (replies: ReplyBatch) => {
        slot.started = true;
        for (const m of replies.other) this.onMessage(slot, m);
        this.onDone(slot, replies.done);
        // Refill this worker at once, from inside the message handler: no round trip through the batch's loop.
        this.dispatch();
      });
      worker.on('error', (e) => this.onCrash(slot, e));
      worker.on('exit', (code) => this.onCrash(slot, new Error(`hash worker exited with code ${code}`)));
      // After the listeners: adding a 'message' listener refs the worker again.
      worker.unref();
      this.slots.push(slot);
    }
  }

  private onMessage(slot: Slot, m: ReplyMessage): void {
    const p = slot.pending.get(m.id);
    if (p === undefined) return;
    if (m.type === 'bytes' && m.planned !== undefined) p.onPlanned(m.planned);
    if (m.bytes > 0) p.onBytes(m.bytes);
    if (m.type === 'bytes') return;
    this.settle(slot, m.id);
    if (m.type === 'error') p.resolve({ ok: false, error: deserializeError(m.error) });
    else p.resolve({ ok: false, cancelled: true });
  }

  private onDone(slot: Slot, done: DoneColumns): void {
    if (done.ids.length === 0) return;
    const digests = done.digests.split(' ');
    for (let i = 0; i < done.ids.length; i++) {
      const id = done.ids[i]!;
      const p = slot.pending.get(id);
      if (p === undefined) continue;
      const planned = done.planned[i]!;
      if (planned >= 0) p.onPlanned(planned);
      const bytes = done.bytes[i]!;
      if (bytes > 0) p.onBytes(bytes);
      this.settle(slot, id);
      const { path, algorithm } = p;
      p.resolve({
        ok: true,
        result: { path, algorithm, digest: digests[i]!, size: done.sizes[i]!, engine: done.engines[i]! },
      });
    }
  }

  /** Forgets a settled job; a worker with nothing left stops keeping the process alive. */
  private settle(slot: Slot, id: number): void {
    slot.pending.delete(id);
    if (slot.pending.size === 0) slot.worker.unref();
  }

  private onCrash(slot: Slot, cause: unknown): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    if (!slot.started) {
      // The worker never loaded: workers cannot run here. Every job, sent or queued, goes back to its caller.
      this.unavailable = true;
      for (const p of slot.pending.values()) p.resolve({ ok: false, unavailable: true });
      slot.pending.clear();
      for (let j = this.queueHead; j < this.queue.length; j++) {
        this.queue[j]!.pending.resolve({ ok: false, unavailable: true });
      }
      for (const q of this.bigQueue.splice(0)) q.pending.resolve({ ok: false, unavailable: true });
      this.queue.length = 0;
      this.queueHead = 0;
      void slot.worker.terminate();
      return;
    }
    for (const p of slot.pending.values()) {
      p.resolve({
        ok: false,
        error: new HashError('E_IO', `a hashing worker failed: ${String(cause)}`, { cause }),
      });
    }
    slot.pending.clear();
    void slot.worker.terminate();
    // Jobs still queued go to the other workers (or a new one).
    this.dispatch();
  }

  /** True once a worker failed to load: later jobs resolve `unavailable` at once. */
  unavailable = false;
  private readonly queue: QueuedJob[] = [];
  private queueHead = 0;
  private target = 1;
  private scheduled = false;

  /** Sends queued jobs to workers with room, one message per worker; starts a worker when all are full. */
  private dispatch(): void {
    this.scheduled = false;
    while (this.bigQueue.length > 0 || this.queueHead < this.queue.length) {
      let best: Slot | undefined;
      for (const s of this.slots) {
        if (best === undefined || s.pending.size < best.pending.size) best = s;
      }
      // Another worker only when every running one is busy and the main thread cannot keep up alone (big files,
      // or a long run of small ones): a few small files cost no worker start-up at all.
      // The main thread counts as one of the `target` hashing threads, except for big files, which it leaves alone.
      if (
        (best === undefined || best.pending.size > 0) &&
        (this.bigQueue.length > 0
          ? this.slots.length < this.target
          : this.slots.length < this.target - 1 && this.laneBusyMs >= LANE_ALONE_MS && this.spareCore())
      ) {
        this.grow(this.slots.length + 1);
        best = this.slots.at(-1);
      }
      if (best === undefined || best.pending.size >= WORKER_QUEUE) break;
      const room = Math.min(WORKER_SEND, WORKER_QUEUE - best.pending.size);
      const jobs: JobMessage[] = [];
      // Big files first: only workers take them.
      while (jobs.length < room && this.bigQueue.length > 0) {
        const q = this.bigQueue.shift()!;
        best.pending.set(q.message.id, q.pending);
        jobs.push(q.message);
      }
      while (jobs.length < room && this.queueHead < this.queue.length) {
        const q = this.queue[this.queueHead++]!;
        best.pending.set(q.message.id, q.pending);
        jobs.push(q.message);
      }
      if (best.pending.size === jobs.length) best.worker.ref();
      best.worker.postMessage(jobs);
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    this.scheduleLane();
  }

  /** Big files handed back by the main thread's lane: for workers only. */
  private readonly bigQueue: QueuedJob[] = [];
  /** Milliseconds the lane has hashed in this process (workers, once started, are kept warm). */
  private laneBusyMs = 0;
  private laneScheduled = false;
  /** Measures whether a core is idle while the lane runs, to decide on a worker for small files. */
  private readonly probe = new SpareCoreProbe();
  /** `FSW_HASH_SMALL_WORKERS`: `1` always starts workers for long runs of small files, `0` never; unset, the probe. */
  private readonly smallWorkers = process.env.FSW_HASH_SMALL_WORKERS;

  private spareCore(): boolean {
    if (this.smallWorkers === '1') return true;
    if (this.smallWorkers === '0') return false;
    return this.probe.spare();
  }
  private laneBuf: Buffer | undefined;
  private readonly laneHashers = new Map<HashAlgorithm, LaneHasher>();

  private scheduleLane(): void {
    if (this.laneScheduled || this.queueHead >= this.queue.length) return;
    this.laneScheduled = true;
    setImmediate(() => void this.lane());
  }

  private async laneHasher(algorithm: HashAlgorithm): Promise<LaneHasher> {
    let h = this.laneHashers.get(algorithm);
    if (h === undefined) {
      const engine = engineFor(algorithm);
      h = { hasher: await engine.create(algorithm), engine: engine.name };
      this.laneHashers.set(algorithm, h);
    }
    return h;
  }

  /**
   * One slice of the main thread's lane: hashes queued files with blocking reads for up to LANE_SLICE_MS, hands
   * big ones to the workers, then lets the event loop run and comes back while files are left.
   */
  private async lane(): Promise<void> {
    const started = performance.now();
    if (this.slots.length < this.target - 1) this.probe.start();
    this.laneBuf ??= takeBuffer();
    const buf = this.laneBuf;
    let handedOver = false;
    let setup = 0;
    // While a worker starts up, nothing is to refill: the long slice.
    const slice = this.slots.some((s) => s.started) ? LANE_SLICE_SHARED_MS : LANE_SLICE_MS;
    while (this.queueHead < this.queue.length && performance.now() - started < slice) {
      const q = this.queue[this.queueHead]!;
      const { message, pending } = q;
      const h = this.laneHashers.get(message.algorithm);
      if (h === undefined) {
        // First file of this algorithm here: create the hasher (hash-wasm compiles its module) and look again.
        // Loading an engine is not hashing: it does not count towards LANE_ALONE_MS.
        const loading = performance.now();
        try {
          await this.laneHasher(message.algorithm);
        } catch {
          // Creating it failed here: the workers hash this algorithm (and report what fails).
          this.queueHead++;
          this.bigQueue.push(q);
          handedOver = true;
        }
        setup += performance.now() - loading;
        continue;
      }
      this.queueHead++;
      const batch = message.batch;
      const cancelled = () => Atomics.load(this.flags, batch % CANCEL_SLOTS) === batch;
      if (cancelled()) {
        pending.resolve({ ok: false, cancelled: true });
        continue;
      }
      let planned = 0;
      try {
        const result = hashFileSync(
          message.path,
          message.algorithm,
          message.range,
          h.hasher,
          h.engine,
          buf,
          () => undefined,
          cancelled,
          (n) => {
            planned = n;
          },
          LANE_MAX_BYTES,
        );
        if (result === null) {
          this.bigQueue.push(q);
          handedOver = true;
        } else if (result === undefined) {
          pending.resolve({ ok: false, cancelled: true });
        } else {
          pending.onPlanned(planned);
          pending.onBytes(planned);
          pending.resolve({ ok: true, result });
        }
      } catch (e) {
        pending.resolve({
          ok: false,
          error: HashError.is(e)
            ? e
            : new HashError('E_IO', `cannot hash ${message.path}: ${String(e)}`, {
                path: message.path,
                cause: e,
              }),
        });
      }
    }
    this.laneBusyMs += performance.now() - started - setup;
    this.laneScheduled = false;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    if (handedOver && this.unavailable) {
      for (const q of this.bigQueue.splice(0)) q.pending.resolve({ ok: false, unavailable: true });
    }
    if (handedOver || this.laneBusyMs >= LANE_ALONE_MS) this.dispatch();
    else this.scheduleLane();
  }

  /**
   * Queues one file for the pool, which grows to `workers` threads while all are busy. `done` is called once with
   * the outcome (never an exception: failures and cancellation are outcomes), synchronously or later: a callback
   * rather than a promise per file, which counts when hashing many small files.
   */
  run(
    workers: number,
    batch: number,
    path: string,
    algorithm: HashAlgorithm,
    range: HashRange | undefined,
    onBytes: (n: number) => void,
    onPlanned: (n: number) => void,
    done: (outcome: JobOutcome) => void,
  ): void {
    if (this.unavailable) {
      done({ ok: false, unavailable: true });
      return;
    }
    this.target = workers;
    const id = this.nextId++;
    this.queue.push({
      message: { type: 'job', id, batch, path, algorithm, range },
      pending: { path, algorithm, onBytes, onPlanned, resolve: done },
    });
    // Jobs queued in the same tick leave together.
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.dispatch());
    }
  }

  /**
   * Starts one worker at once, before any file is queued, for a long run of files that is about to come: when a
   * core is idle right now (`FSW_HASH_SMALL_WORKERS=1`: always; `0`: never). Its start-up (~60 ms of CPU, Node's
   * own) then overlaps the caller's (loading a walk, listing the first directory) instead of delaying the hashing.
   * No-op once a worker runs.
   */
  prestart(workers: number): void {
    if (this.unavailable || this.slots.length > 0 || workers < 2) return;
    this.target = workers;
    if (this.smallWorkers === '1' || (this.smallWorkers !== '0' && this.probe.spareNow())) this.grow(1);
  }

  /** Stops every worker (they are re-created on the next batch). */
  async close(): Promise<void> {
    for (let i = this.queueHead; i < this.queue.length; i++) {
      this.queue[i]!.pending.resolve({ ok: false, cancelled: true });
    }
    for (const q of this.bigQueue.splice(0)) q.pending.resolve({ ok: false, cancelled: true });
    this.queue.length = 0;
    this.queueHead = 0;
    const slots = this.slots.splice(0);
    await Promise.all(
      slots.map(async (s) => {
        s.worker.removeAllListeners('exit');
        for (const p of s.pending.values()) p.resolve({ ok: false, cancelled: true });
        s.pending.clear();
        await s.worker.terminate();
      }),
    );
  }
}

let pool: Pool | undefined;

/** The process-wide pool. */
export function getPool(): Pool {
  pool ??= new Pool();
  return pool;
}

/** Stops the pool's workers, if any. */
export async function closePool(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.close();
}

/** The default number of files hashed at once: one per core. */
export function defaultConcurrency(): number {
  return Math.max(1, availableParallelism());
}
