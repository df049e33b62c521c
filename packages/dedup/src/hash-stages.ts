import { DedupError, type DedupErrorCode } from '@fsw/errors';
import type { HashAlgorithm, HashRange } from '@fsw/hash';
// The list only: the hashers are loaded when a stage first hashes (a run answered from its cache file needs none).
import { ALGORITHMS, isHashAlgorithm } from '@fsw/hash/algorithms';
import { DigestCache, MemoryDigests } from './cache.js';
import { bytesToLatin1, fsPathOf, shown } from './internal/fs-path.js';
import { type DigestKey, hashKey, hashTools, hexOfKey, keyOfHex, pairKey } from './internal/hash-one.js';
import { HELPER_MIN_FILES, startHelper } from './internal/helper.js';
import type { SmallReply } from './internal/small-worker.js';
import { byteCompareStage, sizeStage, splitBy, splitByKey } from './stages.js';
import type { CandidateGroup, DedupFile, DedupStage, StageContext } from './types.js';

/** Which bytes {@link partialHashStage} hashes. */
export type PartialWhere = 'head' | 'tail' | 'head+tail';

/** Options of {@link partialHashStage}. */
export interface PartialHashStageOptions {
  /** Bytes read at the head and/or at the tail. @default 4096 */
  readonly bytes?: number;
  /** @default 'head+tail' */
  readonly where?: PartialWhere;
  /** @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
}

/** Options of {@link fullHashStage}. */
export interface FullHashStageOptions {
  /** @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
}

/** Options of {@link defaultStages}. */
export interface DefaultStagesOptions {
  /** @default 'blake3' */
  readonly algorithm?: HashAlgorithm;
  /** Bytes of the head and of the tail hashed by the partial stage. @default 4096 */
  readonly partialBytes?: number;
  /**
   * Hash of the partial stage. It only filters (files it tells apart differ; files it finds equal go on to the
   * full stage, hashed with `algorithm`), so a cheap checksum suffices: CRC-32 costs a fraction of a native BLAKE3
   * call on a small file. Files no longer than head+tail are then read a second time by the full stage only if
   * their checksums match another file's, which on most trees is far fewer files than the BLAKE3 calls saved.
   * @default 'crc32'
   */
  readonly partialAlgorithm?: HashAlgorithm;
  /** Append {@link byteCompareStage}, the paranoid byte-for-byte check. @default false */
  readonly paranoid?: boolean;
}

function checkAlgorithm(algorithm: unknown): HashAlgorithm {
  if (isHashAlgorithm(algorithm)) return algorithm;
  throw new DedupError(
    'E_INVALID_ARGUMENT',
    `unknown hash algorithm '${String(algorithm)}' (expected one of ${ALGORITHMS.join(', ')})`,
  );
}

/** The digest kind (cache key) of a full-content hash. */
function fullKind(algorithm: HashAlgorithm): string {
  return `full:${algorithm}`;
}

/** The bytes of a file a stage hashes: a head and a tail (the whole file when they overlap). */
interface Window {
  readonly head: number;
  readonly tail: number;
  /** What `@fsw/hash` is given for the same bytes. */
  readonly range: HashRange | undefined;
}

const WHOLE: Window = { head: Number.POSITIVE_INFINITY, tail: 0, range: undefined };

/** The digest of `kind` of `file`; for a file the window covers whole, its full-content digest. */
function digestOf(
  ctx: StageContext,
  file: DedupFile,
  kind: string,
  full: string,
  window: Window,
): string | undefined {
  return ctx.digests.get(file, kindOf(file, kind, full, window));
}

/** The kind a digest of `file` is stored under: a file the window covers whole is stored under its full digest. */
function kindOf(file: DedupFile, kind: string, full: string, window: Window): string {
  return kind !== full && bytesToRead(file, window) === file.size ? full : kind;
}

function bytesToRead(file: DedupFile, window: Window): number {
  return Math.min(window.head + window.tail, file.size);
}

/**
 * Hashes `todo` (the `head` and `tail` of each file that `window` selects) and calls `found(index, key)` for each
 * file hashed, on this thread with reused hashers and buffers (plus a helper thread for thousands of small files):
 * for a file of a few KiB a round trip to a worker costs several times the reading, and native BLAKE3 outruns the
 * reads of a large one. A file that cannot be read goes to `ctx.fail`.
 *
 * With `pairs`, `todo` holds pairs of files of equal size (`todo[2k]`, `todo[2k + 1]`), each read whole side by side:
 * `found(2k, key)` is called for a pair that holds the same bytes (the key of either file), nothing for one that
 * differs.
 */
async function hashFiles(
  todo: readonly DedupFile[],
  ctx: StageContext,
  algorithm: HashAlgorithm,
  window: Window,
  found: (index: number, key: DigestKey) => void,
  pairs = false,
  failed?: (index: number) => void,
): Promise<void> {
  if (todo.length === 0) return;
  const step = pairs ? 2 : 1;
  // Slices of at most SLICE_FILES files or about SLICE_BYTES bytes, as [from, to) of `todo`: the unit of work of
  // both threads.
  const bounds: number[] = [0];
  let chunkBytes = 0;
  let totalBytes = 0;
  for (let i = 0; i < todo.length; i += step) {
    const n = bytesToRead(todo[i]!, window) * step;
    chunkBytes += n;
    totalBytes += n;
    if (i + step - bounds[bounds.length - 1]! >= SLICE_FILES || chunkBytes >= SLICE_BYTES) {
      bounds.push(i + step);
      chunkBytes = 0;
    }
  }
  if (bounds[bounds.length - 1] !== todo.length) bounds.push(todo.length);
  let next = 0;
  const take = () => (next < bounds.length - 1 ? next++ : undefined);
  // One helper thread reads and hashes slices too: both threads take the next slice from the same queue.
  const helper =
    ctx.concurrency >= 2 && (todo.length >= HELPER_MIN_FILES || totalBytes >= HELPER_MIN_BYTES)
      ? startHelper(
          take,
          (slice, id) => {
            const slicePaths: string[] = [];
            const sizes = new Float64Array(bounds[slice + 1]! - bounds[slice]!);
            let raw: [number, string][] | undefined;
            for (let i = bounds[slice]!, j = 0; i < bounds[slice + 1]!; i++, j++) {
              const file = todo[i]!;
              slicePaths.push(file.path);
              sizes[j] = file.size;
              if (file.rawPath !== undefined) {
                raw ??= [];
                raw.push([j, bytesToLatin1(file.rawPath)]);
              }
            }
            return {
              op: 'hash',
              id,
              algorithm,
              head: window.head,
              tail: window.tail,
              paths: slicePaths.join('\0'),
              sizes,
              pairs,
              raw,
            };
          },
          (slice, reply: SmallReply) => {
            const from = bounds[slice]!;
            ctx.addDone(bounds[slice + 1]! - from);
            ctx.addBytes(reply.bytes);
            for (const [index, code, message] of reply.errors) {
              const path = todo[from + index]!.path;
              failed?.(from + index);
              ctx.fail(new DedupError(code as DedupErrorCode, message, { path }));
            }
            const { crcs } = reply;
            if (crcs !== undefined) {
              for (let i = 0; i < crcs.length; i++)
                if (!Number.isNaN(crcs[i])) found(from + i * step, crcs[i]!);
              return;
            }
            const digests = reply.digests.split('\n');
            for (let i = 0; i < digests.length; i++) {
              const digest = digests[i]!;
              if (digest !== '') found(from + i * step, digest);
            }
          },
        )
      : undefined;
  try {
    const tools = await hashTools(algorithm);
    const here = (slice: number) => {
      // Progress once per slice: a clock read per file would cost more than hashing a small one.
      let bytes = 0;
      const from = bounds[slice]!;
      const to = bounds[slice + 1]!;
      try {
        for (let i = from; i < to; i += step) {
          const file = todo[i]!;
          let key: DigestKey | undefined;
          try {
            if (pairs) {
              const pair = pairKey(fsPathOf(file), fsPathOf(todo[i + 1]!), file.size, tools);
              key = pair.key;
              bytes += pair.bytes;
            } else {
              key = hashKey(fsPathOf(file), file.size, window.head, window.tail, tools);
              bytes += bytesToRead(file, window);
            }
          } catch (error) {
            if (!DedupError.is(error)) throw error;
            failed?.(pairs && error.path === shown(fsPathOf(todo[i + 1]!)) ? i + 1 : i);
            ctx.fail(error);
            continue;
          }
          if (key !== undefined) found(i, key);
        }
      } finally {
        ctx.addDone(to - from);
        ctx.addBytes(bytes);
      }
    };
    for (let slice = take(); slice !== undefined; slice = take()) {
      here(slice);
      // A turn of the event loop: the helper's results come in, and an abort is noticed.
      await new Promise<void>((resolve) => setImmediate(resolve));
      ctx.signal?.throwIfAborted();
      helper?.check();
    }
    if (helper !== undefined) for (const slice of await helper.finish()) here(slice);
  } finally {
    await helper?.stop();
  }
}

/** Files per slice. */
const SLICE_FILES = 512;
/** Bytes per slice (a slice is hashed without a turn of the event loop). */
const SLICE_BYTES = 8 * 1024 * 1024;
/** Below this many files and bytes, a helper thread costs more to start (~0.1 s of CPU) than it saves. */
const HELPER_MIN_BYTES = 256 * 1024 * 1024;

/**
 * The cheap second stage: hashes the first and/or last `bytes` of each file, so files of equal size that differ
 * near either end are told apart after reading at most `2 x bytes` of each. Files no longer than the range are
 * hashed whole, and that digest is reused by {@link fullHashStage} (they are never read twice). Files are hashed in
 * one parallel batch per stage. Its groups' key is the hex digest of the range.
 * @throws DedupError `E_INVALID_ARGUMENT` for a `bytes` that is not a positive integer, an unknown `where` or
 *   `algorithm`
 */
export function partialHashStage(options: PartialHashStageOptions = {}): DedupStage {
  const bytes = options.bytes ?? 4096;
  const where = options.where ?? 'head+tail';
  const algorithm = checkAlgorithm(options.algorithm ?? 'blake3');
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new DedupError(
      'E_INVALID_ARGUMENT',
      `partial bytes must be a positive integer, got ${String(bytes)}`,
    );
  }
  if (where !== 'head' && where !== 'tail' && where !== 'head+tail') {
    throw new DedupError('E_INVALID_ARGUMENT', `where must be 'head', 'tail' or 'head+tail', got '${where}'`);
  }
  const window: Window = {
    head: where === 'tail' ? 0 : bytes,
    tail: where === 'head' ? 0 : bytes,
    range:
      where === 'head' ? { head: bytes } : where === 'tail' ? { tail: bytes } : { head: bytes, tail: bytes },
  };
  const kind = `partial:${where}:${bytes}:${algorithm}`;
  const full = fullKind(algorithm);
  const numeric = algorithm === 'crc32';
  // The keys of one run (a stage object may serve several runs at once), by the run's context.
  const runs = new WeakMap<StageContext, PartialRun>();
  const hashGroups = async (groups: readonly CandidateGroup[], ctx: StageContext): Promise<PartialRun> => {
    const run: PartialRun = { keys: [], at: new Map() };
    // A CRC-32 only filters: without a cache file nobody reads it again, so it is kept as a number in `keys`
    // only (no string and no store entry per file). Any other digest is stored as before.
    const keep = !numeric || !(ctx.digests instanceof MemoryDigests);
    const todo: DedupFile[] = [];
    const slots: number[] = [];
    const keys = run.keys;
    let found = 0;
    // A cache file's CRC-32s are read as numbers, without a string per file.
    const cache = ctx.digests instanceof DigestCache ? ctx.digests : undefined;
    for (const group of groups) {
      run.at.set(group, keys.length);
      for (const file of group.files) {
        let known: DigestKey | undefined;
        if (cache !== undefined) known = cache.key(file, kindOf(file, kind, full, window), numeric);
        else {
          const hex = digestOf(ctx, file, kind, full, window);
          known = hex !== undefined && numeric ? keyOfHex(hex) : hex;
        }
        if (known === undefined) {
          todo.push(file);
          slots.push(keys.length);
        } else found++;
        keys.push(known);
      }
    }
    ctx.addDone(found);
    await hashFiles(todo, ctx, algorithm, window, (index, key) => {
      keys[slots[index]!] = key;
      if (!keep) return;
      const file = todo[index]!;
      // A file the window covers whole is stored once, under its full digest: the cache stays half the size.
      ctx.digests.set(file, kindOf(file, kind, full, window), hexOfKey(key));
    });
    return run;
  };
  const split = (group: CandidateGroup, run: PartialRun, from: number) =>
    splitByKey(group, (_, index) => run.keys[from + index]);
  return {
    name: 'partial',
    async prepare(groups, ctx) {
      runs.set(ctx, await hashGroups(groups, ctx));
    },
    refine(group, ctx) {
      const run = runs.get(ctx);
      const from = run?.at.get(group);
      if (run !== undefined && from !== undefined) return split(group, run, from);
      // Called without `prepare` (e.g. by a stage that wraps this one): hash this group now.
      return hashGroups([group], ctx).then((own) => split(group, own, 0));
    },
  };
}

/** What the partial stage computed in one run: a key per file of its groups, at the group's offset. */
interface PartialRun {
  readonly keys: (DigestKey | undefined)[];
  readonly at: Map<CandidateGroup, number>;
}

/**
 * The decisive stage: hashes each whole file (`blake3` by default) in one parallel batch per stage, skipping files
 * whose digest is already known (hashed whole by the partial stage, or found in the cache). Its groups' key is the
 * hex digest, which becomes the `digest` of each duplicate group.
 *
 * A group of two files of equal size, neither digest known (the most common group by far), is read side by side
 * instead: the first file is hashed while the two agree, and the second is given the same digest once every byte
 * matched — one file hashed instead of two, and a pair that differs (a near-duplicate) is given up at the first
 * chunk that differs. With a cache file, the two files of such a pair are then hashed in full after all, so the
 * next run finds both digests in the cache instead of reading the pair again.
 * @throws DedupError `E_INVALID_ARGUMENT` for an unknown `algorithm`
 */
export function fullHashStage(options: FullHashStageOptions = {}): DedupStage {
  const algorithm = checkAlgorithm(options.algorithm ?? 'blake3');
  const kind = fullKind(algorithm);
  return {
    name: 'full',
    async prepare(groups, ctx) {
      const todo: DedupFile[] = [];
      const pairs: DedupFile[] = [];
      let known = 0;
      for (const group of groups) {
        const [a, b] = group.files;
        if (
          group.files.length === 2 &&
          a!.size === b!.size &&
          ctx.digests.get(a!, kind) === undefined &&
          ctx.digests.get(b!, kind) === undefined
        ) {
          pairs.push(a!, b!);
          continue;
        }
        for (const file of group.files) {
          if (ctx.digests.get(file, kind) !== undefined) known++;
          else todo.push(file);
        }
      }
      ctx.addDone(known);
      const store = (index: number, key: DigestKey) => ctx.digests.set(todo[index]!, kind, hexOfKey(key));
      await hashFiles(todo, ctx, algorithm, WHOLE, store);
      // Per pair: 0 differs, 1 equal, 2 a file failed.
      const equal = new Uint8Array(pairs.length / 2);
      await hashFiles(
        pairs,
        ctx,
        algorithm,
        WHOLE,
        (index, key) => {
          const hex = hexOfKey(key);
          ctx.digests.set(pairs[index]!, kind, hex);
          ctx.digests.set(pairs[index + 1]!, kind, hex);
          equal[index / 2] = 1;
        },
        true,
        (index) => {
          equal[index >> 1] = 2;
        },
      );
      if (!(ctx.digests instanceof DigestCache)) return;
      // The pairs that differ, for the cache file (a pair with a file that failed was reported, and is left out).
      const differ: DedupFile[] = [];
      for (let i = 0; i < equal.length; i++)
        if (equal[i] === 0) differ.push(pairs[2 * i]!, pairs[2 * i + 1]!);
      await hashFiles(differ, ctx, algorithm, WHOLE, (index, key) =>
        ctx.digests.set(differ[index]!, kind, hexOfKey(key)),
      );
    },
    refine: (group, ctx) => splitBy(group, (file) => ctx.digests.get(file, kind)),
  };
}

/**
 * The stages `findDuplicates` runs unless told otherwise: size, partial hash (head and tail, CRC-32 unless
 * `partialAlgorithm` says otherwise), full hash (`algorithm`, whose digest names each group) — plus a byte-for-byte
 * comparison with `paranoid: true`.
 * @throws DedupError `E_INVALID_ARGUMENT` for an unknown `algorithm` or a bad `partialBytes`
 */
export function defaultStages(options: DefaultStagesOptions = {}): DedupStage[] {
  const algorithm = options.algorithm ?? 'blake3';
  const stages = [
    sizeStage(),
    partialHashStage({
      bytes: options.partialBytes ?? 4096,
      where: 'head+tail',
      algorithm: options.partialAlgorithm ?? 'crc32',
    }),
    fullHashStage({ algorithm }),
  ];
  if (options.paranoid === true) stages.push(byteCompareStage());
  return stages;
}
