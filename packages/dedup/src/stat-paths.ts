import { DedupError, type DedupErrorCode, type FswError, fromErrno } from '@fsw/errors';
import type { FileMerger } from './files.js';
import { bytesToLatin1, type FsPath } from './internal/fs-path.js';
import { type Helper, startHelper } from './internal/helper.js';
import type { StatReply } from './internal/small-worker.js';
import { STAT_FIELDS, StatStatus, statSlice } from './internal/stat-slice.js';
import type { DedupProgress } from './types.js';

/** Paths per slice: ~1,024 `lstat` calls take a few ms, the longest the event loop waits. */
const STAT_SLICE = 1024;

/**
 * From this many listed paths on, a helper thread stats too. Below it the thread costs more than it saves: it is
 * ready only ~0.1 s after it is started, and the slices it holds when this thread runs out are stat'ed by a thread
 * whose code is not warm yet. On the 8,000-file photo tree one thread made a run with a cache file 0.38 s instead of
 * 0.43 s (medians of 6), and the 200,000-file tree was no slower for starting the thread later.
 */
const STAT_HELPER_MIN_FILES = 16_384;

/** Options of {@link StatQueue}. */
export interface StatQueueOptions {
  readonly follow: boolean;
  readonly minSize: number;
  readonly maxSize: number;
  readonly concurrency: number;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: DedupProgress) => void) | undefined;
  readonly onError: (error: FswError) => 'skip' | 'throw';
}

/**
 * Stats listed paths synchronously, in slices of {@link STAT_SLICE}: `lstat` and the `Stats` object Node builds for
 * it are a large part of a scan of many small files. From {@link STAT_HELPER_MIN_FILES} paths on (and `concurrency` ≥ 2) a
 * helper thread stats the slices already listed while the walk goes on, answering with flat numbers; once the walk is
 * over, {@link StatQueue.finish} works through the rest on this thread too, between turns of the event loop. The
 * regular files within the size limits go to `merger` in the order they were added; paths that vanished, are no
 * longer regular files or cannot be stat'ed go to `onError` (in that order too, once every path is stat'ed).
 */
export class StatQueue {
  readonly #paths: string[] = [];
  /** The exact bytes of the listed paths whose names are not valid UTF-8, by index (`#paths` holds a lossy form). */
  readonly #raw = new Map<number, Buffer>();
  readonly #results: (Float64Array | undefined)[] = [];
  readonly #errors = new Map<number, FswError>();
  readonly #merger: FileMerger;
  readonly #options: StatQueueOptions;
  /** Slices ready to stat (full ones while listing; the last, partial one too once closed). */
  #ready = 0;
  #next = 0;
  #done = 0;
  #last = performance.now();
  #helper: Helper<number> | undefined;
  /** Until {@link StatQueue.finish}: the walk is still the stage being reported. */
  #listing = true;

  constructor(merger: FileMerger, options: StatQueueOptions) {
    this.#merger = merger;
    this.#options = options;
  }

  /** Adds a listed path (with its exact bytes when its name is not valid UTF-8); the helper thread may stat it at once. */
  add(path: string, raw?: Buffer): void {
    const count = this.#paths.push(path);
    if (raw !== undefined) this.#raw.set(count - 1, raw);
    if (count % STAT_SLICE !== 0) return;
    this.#ready++;
    if (this.#helper !== undefined) this.#helper.poke();
    else if (this.#options.concurrency >= 2 && count >= STAT_HELPER_MIN_FILES)
      this.#helper = this.#startHelper();
  }

  #take = (): number | undefined => (this.#next < this.#ready ? this.#next++ : undefined);

  #pathsOf(slice: number): string[] {
    return this.#paths.slice(slice * STAT_SLICE, (slice + 1) * STAT_SLICE);
  }

  /** `[index in the slice, bytes as latin1]` of the slice's paths whose names are not valid UTF-8. */
  #rawOf(slice: number): [number, string][] | undefined {
    if (this.#raw.size === 0) return undefined;
    const out: [number, string][] = [];
    for (let i = slice * STAT_SLICE, end = Math.min(i + STAT_SLICE, this.#paths.length); i < end; i++) {
      const raw = this.#raw.get(i);
      if (raw !== undefined) out.push([i - slice * STAT_SLICE, bytesToLatin1(raw)]);
    }
    return out.length > 0 ? out : undefined;
  }

  #finished(slice: number, facts: Float64Array): void {
    this.#results[slice] = facts;
    this.#done += facts.length / STAT_FIELDS;
    const { onProgress } = this.#options;
    if (onProgress !== undefined && !this.#listing && performance.now() - this.#last >= 100) {
      this.#last = performance.now();
      onProgress({ stage: 'stat', done: this.#done, total: this.#paths.length, bytes: 0 });
    }
  }

  #startHelper(): Helper<number> {
    return startHelper(
      this.#take,
      (slice, id) => ({
        op: 'stat',
        id,
        follow: this.#options.follow,
        paths: this.#pathsOf(slice).join('\0'),
        raw: this.#rawOf(slice),
      }),
      (slice, reply: StatReply) => {
        for (const [i, code, message] of reply.errors) {
          const index = slice * STAT_SLICE + i;
          const path = this.#paths[index]!;
          this.#errors.set(index, new DedupError(code as DedupErrorCode, message, { path }));
        }
        this.#finished(slice, reply.facts);
      },
    );
  }

  #here(slice: number): void {
    const part = this.#pathsOf(slice);
    const from = slice * STAT_SLICE;
    const targets: FsPath[] =
      this.#raw.size === 0 ? part : part.map((path, i) => this.#raw.get(from + i) ?? path);
    const facts = new Float64Array(part.length * STAT_FIELDS);
    statSlice(targets, this.#options.follow, facts, (i, error) => {
      const path = part[i]!;
      this.#errors.set(
        slice * STAT_SLICE + i,
        fromErrno(error, { path, family: DedupError, action: 'stat' }),
      );
    });
    this.#finished(slice, facts);
  }

  /** Ends the helper thread (when the walk failed); {@link StatQueue.finish} does it too. */
  async dispose(): Promise<void> {
    const helper = this.#helper;
    this.#helper = undefined;
    await helper?.stop();
  }

  /** Stats every path not yet stat'ed and hands the results to the merger. */
  async finish(): Promise<void> {
    const { signal, onProgress, onError, minSize, maxSize } = this.#options;
    const paths = this.#paths;
    const slices = Math.ceil(paths.length / STAT_SLICE);
    this.#ready = slices;
    this.#listing = false;
    try {
      this.#helper?.poke();
      for (let slice = this.#take(); slice !== undefined; slice = this.#take()) {
        this.#here(slice);
        await new Promise<void>((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
        this.#helper?.check();
      }
      if (this.#helper !== undefined) for (const slice of await this.#helper.finish()) this.#here(slice);
    } finally {
      await this.dispose();
    }
    signal?.throwIfAborted();
    for (let slice = 0; slice < slices; slice++) {
      const facts = this.#results[slice]!;
      for (let at = 0, index = slice * STAT_SLICE; at < facts.length; at += STAT_FIELDS, index++) {
        const status = facts[at];
        const path = paths[index]!;
        if (status === StatStatus.File) {
          const size = facts[at + 1]!;
          if (size < minSize || size > maxSize) continue;
          this.#merger.add(
            path,
            size,
            facts[at + 2]!,
            facts[at + 3]!,
            facts[at + 4]!,
            facts[at + 5]!,
            this.#raw.get(index),
          );
          continue;
        }
        const error =
          status === StatStatus.Failed
            ? this.#errors.get(index)!
            : status === StatStatus.Gone
              ? new DedupError('E_NOT_FOUND', `cannot stat ${path}: no such file (it vanished)`, { path })
              : new DedupError('E_NOT_FILE', `not a regular file any more: ${path}`, { path });
        if (onError(error) === 'throw') throw error;
      }
    }
    onProgress?.({ stage: 'stat', done: paths.length, total: paths.length, bytes: 0 });
  }
}
