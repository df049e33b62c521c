import { Worker } from 'node:worker_threads';
import { type HelperJob, type HelperReply, type PreloadJob, READY } from './small-worker.js';

/** How long an idle helper thread is kept for the next phase (stat, then each hash stage) before it is ended. */
const IDLE_MS = 1000;

/** Below this many files (and, when hashing, bytes), a helper thread costs more to start than it saves. */
export const HELPER_MIN_FILES = 4096;

let idle: Worker | undefined;
let idleTimer: ReturnType<typeof setTimeout> | undefined;
/** Threads whose module has loaded (they said so): only these are given work. */
const ready = new WeakSet<Worker>();

/**
 * A helper thread: the idle one left by the previous phase (already started, its modules loaded), else a new one.
 * Starting a thread costs ~0.1 s of CPU, which one scan then pays once instead of once per phase.
 */
function acquire(): Worker {
  const kept = idle;
  if (kept !== undefined) {
    idle = undefined;
    clearTimeout(idleTimer);
    kept.ref();
    return kept;
  }
  const worker = new Worker(new URL('./small-worker.js', import.meta.url), { name: '@fsw/dedup' });
  worker.on('exit', () => {
    if (idle === worker) idle = undefined;
  });
  worker.once('message', () => ready.add(worker));
  return worker;
}

/** Keeps a healthy helper for the next phase (unreferenced: it never holds the process open); ends any other. */
async function release(worker: Worker, healthy: boolean): Promise<void> {
  if (!healthy || idle !== undefined) {
    await worker.terminate();
    return;
  }
  worker.unref();
  idle = worker;
  // A thread kept after the stat phase has not loaded its hashers yet: it does so while this thread goes on.
  worker.postMessage({ op: 'preload' } satisfies PreloadJob);
  idleTimer = setTimeout(() => {
    if (idle !== worker) return;
    idle = undefined;
    void worker.terminate();
  }, IDLE_MS);
  idleTimer.unref();
}

/** A helper thread working through a queue of slices shared with the calling thread. */
export interface Helper<T> {
  /** Throws what handling a reply threw (e.g. `ctx.fail` for a file `onError` did not skip). */
  check(): void;
  /** Sends more slices if `take` has some now (for a queue that grows while the helper works). */
  poke(): void;
  /** Resolves once every slice sent is done; to the slices it could not do (the thread failed), for this thread. */
  finish(): Promise<T[]>;
  /** Gives the thread back (kept warm a moment for the next phase, or ended if it failed). */
  stop(): Promise<void>;
}

/**
 * Starts a helper thread that takes slices from `take` (the same queue the calling thread works through), two in
 * flight so one is worked on while the other's reply travels back, and hands each reply to `onReply`.
 */
export function startHelper<T, R extends HelperReply>(
  take: () => T | undefined,
  jobOf: (slice: T, id: number) => HelperJob,
  onReply: (slice: T, reply: R) => void,
): Helper<T> {
  const worker = acquire();
  const outstanding = new Map<number, T>();
  let nextId = 0;
  let broken = false;
  let failure: { error: unknown } | undefined;
  let idleResolve: (() => void) | undefined;
  const send = () => {
    // A thread still starting (~0.1 s) gets nothing yet: the calling thread takes the slices meanwhile, and a phase
    // that ends before the thread is up never waits for it.
    while (ready.has(worker) && !broken && failure === undefined && outstanding.size < 2) {
      const slice = take();
      if (slice === undefined) break;
      const id = nextId++;
      outstanding.set(id, slice);
      worker.postMessage(jobOf(slice, id));
    }
    if (outstanding.size === 0 || broken || failure !== undefined) idleResolve?.();
  };
  const onMessage = (reply: R | typeof READY) => {
    if (reply === READY) {
      ready.add(worker);
      send();
      return;
    }
    const slice = outstanding.get(reply.id);
    if (slice === undefined) return;
    outstanding.delete(reply.id);
    try {
      onReply(slice, reply);
    } catch (error) {
      failure ??= { error };
    }
    send();
  };
  const lost = () => {
    broken = true;
    idleResolve?.();
  };
  worker.on('message', onMessage);
  worker.on('error', lost);
  worker.on('exit', lost);
  send();
  return {
    check() {
      if (failure !== undefined) throw failure.error;
    },
    poke: send,
    async finish() {
      if (outstanding.size > 0 && !broken && failure === undefined) {
        await new Promise<void>((resolve) => {
          idleResolve = resolve;
        });
      }
      this.check();
      // A helper that died leaves its slices to the calling thread.
      const left = [...outstanding.values()];
      outstanding.clear();
      return left;
    },
    async stop() {
      worker.off('message', onMessage);
      worker.off('error', lost);
      worker.off('exit', lost);
      // Replies still on their way belong to this phase: a thread with work outstanding is not reused.
      await release(worker, !broken && outstanding.size === 0);
    },
  };
}
