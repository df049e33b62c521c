import { setMaxListeners } from 'node:events';
import { RemoteError } from '@fsw/errors';
import type { TransferProgress } from '../types.js';

const INTERVAL_MS = 100;

/** Counts a transfer and reports it at most every 100 ms (and once at the end), synchronously, never awaited. */
export class ProgressMeter {
  objectsTotal = 0;
  objectsDone = 0;
  bytesTotal = 0;
  bytesDone = 0;
  phase: TransferProgress['phase'] = 'scan';
  private last = 0;

  constructor(private readonly onProgress: ((p: TransferProgress) => void) | undefined) {}

  tick(force = false): void {
    if (this.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - this.last < INTERVAL_MS) return;
    this.last = now;
    this.onProgress({
      phase: this.phase,
      objectsTotal: this.objectsTotal,
      objectsDone: this.objectsDone,
      bytesTotal: this.bytesTotal,
      bytesDone: this.bytesDone,
    });
  }

  done(): void {
    this.phase = 'done';
    this.tick(true);
  }
}

/**
 * Runs tasks with a bound on concurrency; the first failure aborts the others (through `controller`) and is the
 * one `drain` rethrows.
 */
export class TaskPool {
  private readonly running = new Set<Promise<void>>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly concurrency: number,
    readonly controller: AbortController,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Queues a task; it starts when a slot frees up. */
  add(task: () => Promise<void>): void {
    const run = async () => {
      if (this.active >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
      this.active++;
      try {
        if (this.failure === undefined) {
          this.signal.throwIfAborted();
          await task();
        }
      } catch (error) {
        if (this.failure === undefined) {
          this.failure = { error };
          this.controller.abort(error);
        }
      } finally {
        this.active--;
        this.waiting.shift()?.();
      }
    };
    const p = run();
    this.running.add(p);
    p.finally(() => this.running.delete(p));
  }

  /** Throws the first failure seen so far, if any. */
  check(): void {
    if (this.failure !== undefined) throw this.failure.error;
  }

  /** Waits for every queued task; throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
    this.check();
  }
}

/** An AbortController that also aborts when `outer` does. */
export function linkedController(outer: AbortSignal | undefined): {
  controller: AbortController;
  dispose: () => void;
} {
  const controller = new AbortController();
  // Every call in flight listens to it: hundreds at once is expected, not a leak.
  setMaxListeners(0, controller.signal);
  if (outer === undefined) return { controller, dispose: () => {} };
  const onAbort = () => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => outer.removeEventListener('abort', onAbort) };
}

/**
 * The transfer concurrency of `push`/`pull` (`what` names the caller in the message), validated.
 * @throws RemoteError E_INVALID_ARGUMENT unless a positive integer
 */
export function transferConcurrency(what: 'push' | 'pull', value: number | undefined): number {
  const concurrency = value ?? 16;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RemoteError(
      'E_INVALID_ARGUMENT',
      `${what}: concurrency must be a positive integer, got ${concurrency}`,
    );
  }
  return concurrency;
}
