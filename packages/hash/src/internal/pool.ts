import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { HashError } from '@fsw/errors';
import type { HashAlgorithm, HashRange, HashResult } from '../types.js';
import {
  CANCEL_SLOTS,
  deserializeError,
  type JobMessage,
  type ReplyBatch,
  type ReplyMessage,
  type WorkerData,
} from './protocol.js';

/** The settled outcome of one job; `cancelled` when its batch was cancelled before or while it ran. */
export type JobOutcome =
  | { readonly ok: true; readonly result: HashResult }
  | { readonly ok: false; readonly error: HashError }
  | { readonly ok: false; readonly cancelled: true };

interface Pending {
  readonly id: number;
  readonly onBytes: (n: number) => void;
  readonly onPlanned: (n: number) => void;
  readonly resolve: (o: JobOutcome) => void;
}

interface Slot {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Jobs queued in this tick, posted together in one message. */
  outbox: JobMessage[];
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

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
  }

  private grow(size: number): void {
    while (this.slots.length < size) {
      const data: WorkerData = { cancel: this.cancel };
      const worker = new Worker(WORKER_URL, {
        workerData: data,
        name: '@fsw/hash',
        execArgv: workerExecArgv(),
      });
      const slot: Slot = { worker, pending: new Map(), outbox: [] };
      worker.on('message', (batch: ReplyBatch) => {
        for (const m of batch) this.onMessage(slot, m);
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
    if (m.type !== 'error' && m.type !== 'cancelled' && m.planned !== undefined) p.onPlanned(m.planned);
    if (m.bytes > 0) p.onBytes(m.bytes);
    if (m.type === 'bytes') return;
    slot.pending.delete(m.id);
    if (slot.pending.size === 0) slot.worker.unref();
    if (m.type === 'done') p.resolve({ ok: true, result: m.result });
    else if (m.type === 'error') p.resolve({ ok: false, error: deserializeError(m.error) });
    else p.resolve({ ok: false, cancelled: true });
  }

  private onCrash(slot: Slot, cause: unknown): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    for (const p of slot.pending.values()) {
      p.resolve({
        ok: false,
        error: new HashError('E_IO', `a hashing worker failed: ${String(cause)}`, { cause }),
      });
    }
    slot.pending.clear();
    void slot.worker.terminate();
  }

  /**
   * Queues one file on the least busy of the first `workers` workers (starting one more while all are busy).
   * Never rejects: failures and cancellation come back as a {@link JobOutcome}.
   */
  run(
    workers: number,
    batch: number,
    path: string,
    algorithm: HashAlgorithm,
    range: HashRange | undefined,
    onBytes: (n: number) => void,
    onPlanned: (n: number) => void,
  ): Promise<JobOutcome> {
    let best: Slot | undefined;
    for (let i = 0; i < workers && i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (best === undefined || s.pending.size < best.pending.size) best = s;
    }
    // Start another worker only when every running one is busy: a batch of one file costs one worker start-up.
    if ((best === undefined || best.pending.size > 0) && this.slots.length < workers) {
      this.grow(this.slots.length + 1);
      best = this.slots.at(-1);
    }
    const slot = best!;
    const id = this.nextId++;
    return new Promise<JobOutcome>((resolve) => {
      slot.pending.set(id, { id, onBytes, onPlanned, resolve });
      if (slot.pending.size === 1) slot.worker.ref();
      // One message per worker per tick, however many files were queued in it: messages cost more than jobs.
      if (slot.outbox.length === 0) {
        queueMicrotask(() => {
          const jobs = slot.outbox;
          slot.outbox = [];
          slot.worker.postMessage(jobs);
        });
      }
      slot.outbox.push({ type: 'job', id, batch, path, algorithm, range });
    });
  }

  /** Stops every worker (they are re-created on the next batch). */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(
      slots.map(async (s) => {
        s.worker.removeAllListeners('exit');
        for (const p of s.pending.values()) p.resolve({ ok: false, cancelled: true });
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
