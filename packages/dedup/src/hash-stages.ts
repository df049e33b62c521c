import { DedupError, type DedupErrorCode } from '@fsw/errors';
import { ALGORITHMS, type HashAlgorithm, type HashRange, isHashAlgorithm } from '@fsw/hash';
import { hashOne, hashTools } from './internal/hash-one.js';
import { HELPER_MIN_FILES, startHelper } from './internal/helper.js';
import type { SmallReply } from './internal/small-worker.js';
import { byteCompareStage, sizeStage, splitBy } from './stages.js';
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
  if (kind !== full && bytesToRead(file, window) === file.size) return ctx.digests.get(file, full);
  return ctx.digests.get(file, kind);
}

function bytesToRead(file: DedupFile, window: Window): number {
  return Math.min(window.head + window.tail, file.size);
}

/**
 * Hashes every file of every group that has no digest of `kind` yet and stores the digests, on this thread with
 * reused hashers and buffers (plus a helper thread for thousands of small files): for a file of a few KiB a round
 * trip to a worker costs several times the reading, and native BLAKE3 outruns the reads of a large one.
 * Files the window covers entirely also get their full-content digest, so the full stage never reads them again.
 */
async function hashMissing(
  groups: readonly CandidateGroup[],
  ctx: StageContext,
  kind: string,
  algorithm: HashAlgorithm,
  window: Window,
): Promise<void> {
  const full = fullKind(algorithm);
  const todo: DedupFile[] = [];
  let known = 0;
  for (const group of groups) {
    for (const file of group.files) {
      if (digestOf(ctx, file, kind, full, window) !== undefined) known++;
      else todo.push(file);
    }
  }
  ctx.addDone(known);
  if (todo.length === 0) return;
  // A file the window covers whole is stored once, under its full digest: the cache stays half the size.
  const store = (file: DedupFile, digest: string) =>
    ctx.digests.set(file, bytesToRead(file, window) === file.size ? full : kind, digest);
  // Slices of at most SLICE_FILES files or about SLICE_BYTES bytes: the unit of work of both threads.
  const chunks: DedupFile[][] = [];
  let chunk: DedupFile[] = [];
  let chunkBytes = 0;
  let totalBytes = 0;
  for (const file of todo) {
    const n = bytesToRead(file, window);
    chunk.push(file);
    chunkBytes += n;
    totalBytes += n;
    if (chunk.length >= SLICE_FILES || chunkBytes >= SLICE_BYTES) {
      chunks.push(chunk);
      chunk = [];
      chunkBytes = 0;
    }
  }
  if (chunk.length > 0) chunks.push(chunk);
  let next = 0;
  const take = () => (next < chunks.length ? chunks[next++] : undefined);
  // One helper thread reads and hashes slices too: both threads take the next slice from the same queue.
  const helper =
    ctx.concurrency >= 2 && (todo.length >= HELPER_MIN_FILES || totalBytes >= HELPER_MIN_BYTES)
      ? startHelper(
          take,
          (slice, id) => ({
            op: 'hash',
            id,
            algorithm,
            head: window.head,
            tail: window.tail,
            paths: slice.map((f) => f.path).join('\0'),
            sizes: Float64Array.from(slice, (f) => f.size),
          }),
          (slice, reply: SmallReply) => {
            ctx.addDone(slice.length);
            ctx.addBytes(reply.bytes);
            for (const [index, code, message] of reply.errors) {
              const path = slice[index]!.path;
              ctx.fail(new DedupError(code as DedupErrorCode, message, { path }));
            }
            const digests = reply.digests.split('\n');
            for (let i = 0; i < slice.length; i++) {
              const digest = digests[i];
              if (digest !== undefined && digest !== '') store(slice[i]!, digest);
            }
          },
        )
      : undefined;
  try {
    const tools = await hashTools(algorithm);
    const here = (slice: readonly DedupFile[]) => {
      // Progress once per slice: a clock read per file would cost more than hashing a small one.
      let bytes = 0;
      try {
        for (const file of slice) {
          let digest: string;
          try {
            digest = hashOne(file.path, file.size, window.head, window.tail, tools);
          } catch (error) {
            if (!DedupError.is(error)) throw error;
            ctx.fail(error);
            continue;
          }
          bytes += bytesToRead(file, window);
          store(file, digest);
        }
      } finally {
        ctx.addDone(slice.length);
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
  return {
    name: 'partial',
    prepare: (groups, ctx) => hashMissing(groups, ctx, kind, algorithm, window),
    refine: (group, ctx) => splitBy(group, (file) => digestOf(ctx, file, kind, full, window)),
  };
}

/**
 * The decisive stage: hashes each whole file (`blake3` by default) in one parallel batch per stage, skipping files
 * whose digest is already known (hashed whole by the partial stage, or found in the cache). Its groups' key is the
 * hex digest, which becomes the `digest` of each duplicate group.
 * @throws DedupError `E_INVALID_ARGUMENT` for an unknown `algorithm`
 */
export function fullHashStage(options: FullHashStageOptions = {}): DedupStage {
  const algorithm = checkAlgorithm(options.algorithm ?? 'blake3');
  const kind = fullKind(algorithm);
  return {
    name: 'full',
    prepare: (groups, ctx) => hashMissing(groups, ctx, kind, algorithm, WHOLE),
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
