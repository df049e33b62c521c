import { DedupError, type FswError } from '@fsw/errors';
import { ALGORITHMS, type HashAlgorithm, type HashRange, hashFilesIter, isHashAlgorithm } from '@fsw/hash';
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

/**
 * Hashes every file of every group that has no digest of `kind` yet, in one batch over `@fsw/hash`'s worker pool,
 * and stores the digests. `alsoFull` tells which files the range covers entirely, whose digest is then also their
 * full-content digest.
 */
async function hashMissing(
  groups: readonly CandidateGroup[],
  ctx: StageContext,
  kind: string,
  algorithm: HashAlgorithm,
  range: HashRange | undefined,
  bytesPerFile: number,
  alsoFull: (file: DedupFile) => boolean,
): Promise<void> {
  const full = fullKind(algorithm);
  const todo = new Map<string, DedupFile>();
  for (const group of groups) {
    for (const file of group.files) {
      if (ctx.digests.get(file, kind) !== undefined) continue;
      if (kind !== full && alsoFull(file)) {
        const known = ctx.digests.get(file, full);
        if (known !== undefined) {
          ctx.digests.set(file, kind, known);
          continue;
        }
      }
      todo.set(file.path, file);
    }
  }
  if (todo.size === 0) return;
  let reported = 0;
  // An iterator (not an array) so that @fsw/hash does not stat every file up front to plan a byte total.
  const paths = todo.keys();
  for await (const result of hashFilesIter(paths, {
    algorithm,
    ...(range ? { range } : {}),
    concurrency: workersFor(todo, ctx.concurrency, bytesPerFile),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    onProgress: (p) => {
      ctx.addBytes(p.bytesDone - reported);
      reported = p.bytesDone;
    },
    onError: (error) => decide(ctx, error),
  })) {
    const file = todo.get(result.path);
    if (file === undefined) continue;
    if (result.size !== file.size) {
      // Changed since it was listed: its digest belongs to no size we grouped by.
      decide(
        ctx,
        new DedupError('E_CHANGED', `file changed during the scan: ${file.path}`, { path: file.path }),
      );
      continue;
    }
    ctx.digests.set(file, kind, result.digest);
    if (kind !== full && alsoFull(file)) ctx.digests.set(file, full, result.digest);
  }
}

/** A few small files are hashed on this thread: starting worker threads would cost more than the hashing. */
const INLINE_FILES = 16;
const INLINE_BYTES = 4 * 1024 * 1024;

function workersFor(todo: ReadonlyMap<string, DedupFile>, concurrency: number, bytesPerFile: number): number {
  if (todo.size <= INLINE_FILES) {
    let bytes = 0;
    for (const file of todo.values()) bytes += Math.min(file.size, bytesPerFile);
    if (bytes <= INLINE_BYTES) return 1;
  }
  // Never more workers than files: a pool worker that never got a job keeps the process alive (@fsw/hash 0.1).
  return Math.min(concurrency, todo.size);
}

function decide(ctx: StageContext, error: FswError): 'skip' | 'throw' {
  try {
    ctx.fail(error);
    return 'skip';
  } catch {
    return 'throw';
  }
}

/**
 * The cheap second stage: hashes the first and/or last `bytes` of each file, so files of equal size that differ
 * near either end are told apart after reading at most `2 x bytes` of each. Files no longer than the range are
 * hashed whole, and that digest is reused by {@link fullHashStage} (they are never read twice). Files are hashed in
 * one parallel batch per stage. Its groups' key is the hex digest of the range.
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
  const range: HashRange =
    where === 'head' ? { head: bytes } : where === 'tail' ? { tail: bytes } : { head: bytes, tail: bytes };
  const covered = where === 'head+tail' ? 2 * bytes : bytes;
  const kind = `partial:${where}:${bytes}:${algorithm}`;
  const whole = (file: DedupFile) => file.size <= covered;
  return {
    name: 'partial',
    prepare: (groups, ctx) => hashMissing(groups, ctx, kind, algorithm, range, covered, whole),
    refine: (group, ctx) => splitBy(group, (file) => ctx.digests.get(file, kind)),
  };
}

/**
 * The decisive stage: hashes each whole file (`blake3` by default) in one parallel batch per stage, skipping files
 * whose digest is already known (hashed whole by the partial stage, or found in the cache). Its groups' key is the
 * hex digest, which becomes the `digest` of each duplicate group.
 */
export function fullHashStage(options: FullHashStageOptions = {}): DedupStage {
  const algorithm = checkAlgorithm(options.algorithm ?? 'blake3');
  const kind = fullKind(algorithm);
  return {
    name: 'full',
    prepare: (groups, ctx) =>
      hashMissing(groups, ctx, kind, algorithm, undefined, Number.POSITIVE_INFINITY, () => true),
    refine: (group, ctx) => splitBy(group, (file) => ctx.digests.get(file, kind)),
  };
}

/**
 * The stages `findDuplicates` runs unless told otherwise: size, partial hash (head and tail), full hash — plus
 * a byte-for-byte comparison with `paranoid: true`.
 */
export function defaultStages(options: DefaultStagesOptions = {}): DedupStage[] {
  const algorithm = options.algorithm ?? 'blake3';
  const stages = [
    sizeStage(),
    partialHashStage({ bytes: options.partialBytes ?? 4096, where: 'head+tail', algorithm }),
    fullHashStage({ algorithm }),
  ];
  if (options.paranoid === true) stages.push(byteCompareStage());
  return stages;
}
