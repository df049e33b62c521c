import type { Worker } from 'node:worker_threads';
import type { StatFailure } from './stat-slice.js';
import type { StatReply, StatRequest } from './stat-worker.js';

/**
 * A thread lstat-ing slices of listed paths (stat-worker.ts) while the main thread goes on: it takes slice numbers
 * from `take`, keeps two in flight, and hands each answer to `onFacts`. The caller never waits for an answer: a
 * slice not answered when needed (the thread is slow, or failed) is stat-ed by the caller itself.
 */
export class StatHelper {
  private inFlight = 0;
  private broken = false;

  private constructor(
    private readonly worker: Worker,
    private readonly take: () => number | undefined,
    private readonly pathsOf: (slice: number) => string[],
    private readonly onFacts: (slice: number, facts: Float64Array, failures: readonly StatFailure[]) => void,
  ) {
    worker.on('message', (reply: StatReply) => {
      this.inFlight--;
      this.onFacts(reply.id, reply.facts, reply.failures);
      this.poke();
    });
    const lost = () => {
      this.broken = true;
    };
    worker.on('error', lost);
    worker.on('exit', lost);
  }

  /** Starts the thread (it answers once loaded; requests wait in its queue meanwhile). */
  static async start(
    take: () => number | undefined,
    pathsOf: (slice: number) => string[],
    onFacts: (slice: number, facts: Float64Array, failures: readonly StatFailure[]) => void,
  ): Promise<StatHelper> {
    const { Worker } = await import('node:worker_threads');
    // No execArgv: flags about the main script (`-e`, `--input-type`) would stop a worker from starting.
    const worker = new Worker(new URL('./stat-worker.js', import.meta.url), {
      name: '@fsw/tree stat',
      execArgv: [],
    });
    return new StatHelper(worker, take, pathsOf, onFacts);
  }

  /** Sends slices that are ready, up to two in flight. */
  poke(): void {
    while (!this.broken && this.inFlight < 2) {
      const slice = this.take();
      if (slice === undefined) return;
      // No path holds a NUL.
      const request: StatRequest = { id: slice, paths: this.pathsOf(slice).join('\0') };
      this.inFlight++;
      this.worker.postMessage(request);
    }
  }

  async close(): Promise<void> {
    this.broken = true;
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
