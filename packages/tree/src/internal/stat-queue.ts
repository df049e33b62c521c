import { availableParallelism } from 'node:os';
import { StatHelper } from './stat-helper.js';
import { STAT_FIELDS, type StatFailure, statSlice } from './stat-slice.js';

/** Paths per slice: ~1,000 lstat calls take a few ms. */
export const SLICE = 1024;
/** Paths queued after which a helper thread lstat-s slices while the caller goes on (2 CPUs or more). */
const HELPER_AFTER = 8192;

/**
 * Paths queued to be lstat-ed later, in slices of blocking calls: from {@link HELPER_AFTER} paths on (or from the
 * first path with `helper: true`; never with `false`) partly by a helper thread while the caller goes on queueing;
 * the rest, and any slice the thread has not answered when the caller needs it, on the calling thread (it never
 * waits for the thread). Facts are flat numbers, not one `Stats` object per path. Used by checkout (every path
 * stat-ed, then read at random: {@link finish}) and by write-tree's scan (slices read in order and let go:
 * {@link endQueueing}, {@link statHere}, {@link release}).
 */
export class StatQueue {
  private readonly paths: string[] = [];
  private readonly slices: (Float64Array | undefined)[] = [];
  private readonly failures: (readonly StatFailure[])[] = [];
  /** Slices let go by the caller: a late answer for one of them is dropped. */
  private released = 0;
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

  /** The number of slices, once {@link endQueueing} was called. */
  get sliceCount(): number {
    return this.ready;
  }

  /** The path numbered `i`. */
  path(i: number): string {
    return this.paths[i]!;
  }

  /** No more paths: the last, partial slice may be taken too. */
  endQueueing(): void {
    this.ready = Math.ceil(this.paths.length / SLICE);
    this.helper?.poke();
  }

  /**
   * Stats one slice on this thread, unless `slice` is answered already: the next slice nobody took, or when none is
   * left `slice` itself (which the helper still holds: at most two slices are stat-ed twice). Call until
   * {@link facts} has `slice`, yielding to the event loop in between to let the helper's answers in.
   */
  statHere(slice: number): void {
    if (this.slices[slice] !== undefined) return;
    const mine = this.take() ?? slice;
    const own = new Float64Array(Math.min(SLICE, this.paths.length - mine * SLICE) * STAT_FIELDS);
    this.done(mine, own, statSlice(this.pathsOf(mine), own));
  }

  /** The facts of `slice` ({@link STAT_FIELDS} numbers per path: see stat-slice.ts), if answered. */
  facts(slice: number): Float64Array | undefined {
    return this.slices[slice];
  }

  /** Lets go of every slice below `slice` (read by the caller): their memory, and any late answer. */
  release(slice: number): void {
    for (let s = this.released; s < slice; s++) {
      this.slices[s] = undefined;
      this.failures[s] = [];
    }
    this.released = Math.max(this.released, slice);
  }

  /** Stats every queued path not answered yet, yielding to the event loop between slices, then stops the thread. */
  async finish(signal: AbortSignal | undefined): Promise<void> {
    this.endQueueing();
    for (let slice = 0; slice < this.ready; ) {
      signal?.throwIfAborted();
      if (this.slices[slice] !== undefined) {
        slice++;
        continue;
      }
      this.statHere(slice);
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

  /** Stops the helper thread (also when the caller gives up early). */
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
    if (slice < this.released || this.slices[slice] !== undefined) return;
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
