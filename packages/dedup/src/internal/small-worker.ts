import { parentPort } from 'node:worker_threads';
import { DedupError, fromErrno } from '@fsw/errors';
import type { HashAlgorithm } from '@fsw/hash';
import { type FsPath, latin1ToBytes, shown } from './fs-path.js';
import type { DigestKey, HashTools } from './hash-one.js';
import { STAT_FIELDS, statSlice } from './stat-slice.js';

/** A slice of files to read and hash (the first `head` and last `tail` bytes of each). */
export interface SmallJob {
  readonly op: 'hash';
  readonly id: number;
  readonly algorithm: HashAlgorithm;
  readonly head: number;
  readonly tail: number;
  /** The paths joined by NUL (which no path contains): one string is cloned far faster than an array of them. */
  readonly paths: string;
  readonly sizes: Float64Array;
  /** Paths whose names are not valid UTF-8: `[index, their bytes as latin1]` (`paths` holds a lossy form). */
  readonly raw?: readonly [number, string][];
  /**
   * The files come in pairs of equal size, read side by side (the whole files): one key per pair, for both files
   * when they hold the same bytes; none (empty digest, `NaN` checksum) when they differ.
   */
  readonly pairs?: boolean;
}

/** A slice of paths to stat (following symlinks with `follow`). */
export interface StatJob {
  readonly op: 'stat';
  readonly id: number;
  readonly follow: boolean;
  /** The paths joined by NUL. */
  readonly paths: string;
  /** Paths whose names are not valid UTF-8: `[index, their bytes as latin1]` (`paths` holds a lossy form). */
  readonly raw?: readonly [number, string][];
}

/**
 * Sent when the thread is kept idle for a next phase: it loads its hashing modules meanwhile (tens of ms), so that a
 * hash stage finds it ready at once. No reply.
 */
export interface PreloadJob {
  readonly op: 'preload';
}

/** A job of the helper thread. */
export type HelperJob = SmallJob | StatJob;

/** What every reply carries: its job's id and `[index, code, message]` of each path that failed. */
export interface HelperReply {
  readonly id: number;
  readonly errors: [number, string, string][];
}

/** The digests of a hash job. */
export interface SmallReply extends HelperReply {
  /**
   * The digests in the job's order (one per pair with `pairs`), joined by newlines (empty for a file that failed:
   * see `errors`, or a pair that differs).
   */
  readonly digests: string;
  /** For `crc32`, the checksums as numbers instead (`NaN` for a file that failed); `digests` is then empty. */
  readonly crcs?: Float64Array;
  readonly bytes: number;
}

/** The facts of a stat job: `statSlice`'s numbers, `STAT_FIELDS` per path. */
export interface StatReply extends HelperReply {
  readonly facts: Float64Array;
}

/** What the thread posts once its module has loaded, before any reply. */
export const READY = 'ready';

const toolsOf = new Map<HashAlgorithm, HashTools>();

async function hash(job: SmallJob): Promise<SmallReply> {
  // Loaded on the first hash job: a thread started for the stat phase answers sooner without @fsw/hash.
  const { hashKey, hashTools, pairKey } = await import('./hash-one.js');
  let tools = toolsOf.get(job.algorithm);
  if (tools === undefined) {
    tools = await hashTools(job.algorithm);
    toolsOf.set(job.algorithm, tools);
  }
  const paths: FsPath[] = withRaw(job.paths.split('\0'), job.raw);
  // One key per unit: a file, or with `pairs` two files read side by side (a pair that differs has no key).
  const step = job.pairs === true ? 2 : 1;
  const units = paths.length / step;
  // CRC-32s travel as numbers: no string per file to build here and to split and keep there.
  const crcs = tools.crc !== undefined ? new Float64Array(units) : undefined;
  const digests: string[] = crcs === undefined ? new Array(units) : [];
  const errors: [number, string, string][] = [];
  let bytes = 0;
  for (let u = 0, i = 0; u < units; u++, i += step) {
    try {
      const size = job.sizes[i]!;
      let key: DigestKey | undefined;
      if (step === 2) {
        const pair = pairKey(paths[i]!, paths[i + 1]!, size, tools);
        key = pair.key;
        bytes += pair.bytes;
      } else {
        key = hashKey(paths[i]!, size, job.head, job.tail, tools);
        bytes += Math.min(job.head + job.tail, size);
      }
      if (crcs !== undefined) crcs[u] = key === undefined ? Number.NaN : (key as number);
      else digests[u] = key === undefined ? '' : (key as string);
    } catch (error) {
      if (crcs !== undefined) crcs[u] = Number.NaN;
      else digests[u] = '';
      const e = DedupError.is(error) ? error : new DedupError('E_IO', String(error));
      // The file the error names (the second of a pair, or the first).
      errors.push([step === 2 && e.path === shown(paths[i + 1]!) ? i + 1 : i, e.code, e.message]);
    }
  }
  if (crcs !== undefined) return { id: job.id, digests: '', crcs, errors, bytes };
  return { id: job.id, digests: digests.join('\n'), errors, bytes };
}

/** The paths of a job, with the exact bytes of those whose names are not valid UTF-8. */
function withRaw(paths: FsPath[], raw: readonly [number, string][] | undefined): FsPath[] {
  if (raw !== undefined) for (const [i, bytes] of raw) paths[i] = latin1ToBytes(bytes);
  return paths;
}

function stat(job: StatJob): StatReply {
  const paths = withRaw(job.paths.split('\0'), job.raw);
  const facts = new Float64Array(paths.length * STAT_FIELDS);
  const errors: [number, string, string][] = [];
  statSlice(paths, job.follow, facts, (i, error) => {
    const e = fromErrno(error, { path: shown(paths[i]!), family: DedupError, action: 'stat' });
    errors.push([i, e.code, e.message]);
  });
  return { id: job.id, errors, facts };
}

parentPort?.on('message', (job: HelperJob | PreloadJob) => {
  if (job.op === 'preload') {
    // A failure to load surfaces with the first hash job, which imports the same module.
    import('./hash-one.js').catch(() => {});
    return;
  }
  if (job.op === 'stat') {
    const reply = stat(job);
    parentPort?.postMessage(reply, [reply.facts.buffer as ArrayBuffer]);
    return;
  }
  hash(job).then(
    (reply) =>
      parentPort?.postMessage(reply, reply.crcs === undefined ? [] : [reply.crcs.buffer as ArrayBuffer]),
    (error: unknown) => {
      const paths = job.paths.split('\0');
      parentPort?.postMessage({
        id: job.id,
        digests: '',
        errors: paths.map((path, i) => [i, 'E_IO', `cannot hash ${path}: ${String(error)}`]),
        bytes: 0,
      } satisfies SmallReply);
    },
  );
});
parentPort?.postMessage(READY);
