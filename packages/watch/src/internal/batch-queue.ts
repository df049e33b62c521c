import type { FileEvent } from '../types.js';

/** The pending batches of one async iterator: batches, then either the end or an error. */
export class BatchQueue implements AsyncIterator<FileEvent[]> {
  readonly #items: FileEvent[][] = [];
  #waiter: { resolve: (r: IteratorResult<FileEvent[]>) => void; reject: (e: unknown) => void } | undefined;
  #ended = false;
  #failed = false;
  #error: unknown;
  readonly #onReturn: (queue: BatchQueue) => void;

  constructor(onReturn: (queue: BatchQueue) => void) {
    this.#onReturn = onReturn;
  }

  push(batch: FileEvent[]): void {
    if (this.#ended) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve({ value: batch, done: false });
    } else this.#items.push(batch);
  }

  /** Ends the iteration once the queued batches are read. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#settle();
  }

  /** Throws `error` from the iteration once the queued batches are read. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failed = true;
    this.#error = error;
    this.#settle();
  }

  #settle(): void {
    const waiter = this.#waiter;
    if (waiter === undefined || this.#items.length > 0) return;
    this.#waiter = undefined;
    if (this.#failed) {
      this.#failed = false;
      waiter.reject(this.#error);
    } else waiter.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<FileEvent[]>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#ended) {
      if (this.#failed) {
        // The error is thrown once; later calls end the iteration.
        this.#failed = false;
        return Promise.reject(this.#error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<FileEvent[]>> {
    this.#ended = true;
    this.#failed = false;
    this.#items.length = 0;
    this.#onReturn(this);
    this.#settle();
    return Promise.resolve({ value: undefined, done: true });
  }
}
