import { availableParallelism } from 'node:os';
import { StatHelper } from './stat-helper.js';
import { STAT_FIELDS, type StatFailure, statSlice } from './stat-slice.js';

/** Paths per slice: ~1,000 lstat calls take a few ms. */
const SLICE = 1024;
/** Paths queued after which a helper thread lstat-s slices while the caller goes on (2 CPUs or more). */
const HELPER_AFTER = 8192;

/**
 * Paths queued to be lstat-ed later, in slices of blocking calls: from {@link HELPER_AFTER} paths on (or from the
 * start with `helper: true`; never with `false`) partly by a helper thread while the caller goes on queueing; the
 * rest, and any slice the thread has not answered when {@link finish} needs it, on the calling thread (it never
 * waits for the thread). Facts are flat numbers, not one `Stats` object per path.
 */
export class StatQueue {
  private readonly paths: string[] = [];
  private readonly slices: (Float64Array | undefined)[] = [];
  private readonly failures: (readonly StatFailure[])[] = [];
  private ready = 0;
  private next = 0;
  private helper: StatHelper | undefined;
  private starting: Promise<void> | undefined;
  private wantHelper: boolean;

  private readonly helperFirst: boolean;

  constructor(helperMode: boolean | undefined) {
    this.wantHelper = helperMode ?? availableParallelism() >= 2;
    this.helperFirst = helperMode === true;
  }

  /** Queues a path; returns its number. */
  add(path: string): number {
    const count = this.paths.push(path);
    // `helper: true` starts the thread with the first path (a checkout into an empty folder queues none).
    if (count === 1 && this.helperFirst) this.startHelper();
    if (count % SLICE === 0) {
      this.ready++;
      if (this.helper !== undefined) this.helper.poke();
      else if (this.wantHelper && count >= HELPER_AFTER) this.startHelper();
    }
    return count - 1;
  }

  get size(): number {
    return this.paths.length;
  }

  /** Stats every queued path not answered yet, yielding to the event loop between slices. */
  async finish(signal: AbortSignal | undefined): Promise<void> {
    this.ready = Math.ceil(this.paths.length / SLICE);
    this.helper?.poke();
    for (let slice = 0; slice < this.ready; ) {
      signal?.throwIfAborted();
      if (this.slices[slice] !== undefined) {
        slice++;
        continue;
      }
      // A slice the helper still holds, when nothing is left to take, is stat-ed here too (at most two, twice).
      const mine = this.take() ?? slice;
      const own = new Float64Array(Math.min(SLICE, this.paths.length - mine * SLICE) * STAT_FIELDS);
      this.done(mine, own, statSlice(this.pathsOf(mine), own));
      // Lets the helper's answers in (and timers, and abort).
      await new Promise((resolveTurn) => setImmediate(resolveTurn));
    }
    await this.close();
  }

  /** STAT_OK, STAT_GONE or STAT_FAILED (see stat-slice.ts) of path `i` (after {@link finish}). */
  status(i: number): number {
    const slice = Math.floor(i / SLICE);
    return this.slices[slice]![(i - slice * SLICE) * STAT_FIELDS]!;
  }

  /** The error of a path whose status is STAT_FAILED, with its errno `code`. */
  failure(i: number): Error & { code: string } {
    const slice = Math.floor(i / SLICE);
    const found = this.failures[slice]!.find((x) => x.index === i - slice * SLICE)!;
    return Object.assign(new Error(found.message), { code: found.code });
  }

  /** Copies the facts of path `i` (status STAT_OK) into `into`: no object per path. */
  read(i: number, into: { mode: number; size: number; mtimeMs: number; ino: number }): void {
    const slice = Math.floor(i / SLICE);
    const f = this.slices[slice]!;
    const at = (i - slice * SLICE) * STAT_FIELDS;
    into.mode = f[at + 1]!;
    into.size = f[at + 2]!;
    into.mtimeMs = f[at + 3]!;
    into.ino = f[at + 4]!;
  }

  /** Stops the helper thread (also when the caller gives up before {@link finish}). */
  async close(): Promise<void> {
    this.wantHelper = false;
    await this.starting;
    await this.helper?.close();
    this.helper = undefined;
  }

  private readonly take = (): number | undefined => (this.next < this.ready ? this.next++ : undefined);

  private readonly pathsOf = (slice: number): string[] =>
    this.paths.slice(slice * SLICE, (slice + 1) * SLICE);

  private readonly done = (slice: number, f: Float64Array, fails: readonly StatFailure[]): void => {
    if (this.slices[slice] !== undefined) return;
    this.slices[slice] = f;
    this.failures[slice] = fails;
  };

  private startHelper(): void {
    this.starting ??= StatHelper.start(this.take, this.pathsOf, this.done).then(
      (h) => {
        if (!this.wantHelper) {
          void h.close();
          return;
        }
        this.helper = h;
        h.poke();
      },
      () => {
        // No thread: the calling thread stats everything.
      },
    );
  }
}
