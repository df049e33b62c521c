import { parentPort } from 'node:worker_threads';
import { DedupError, fromErrno } from '@fsw/errors';
import type { HashAlgorithm } from '@fsw/hash';
import type { HashTools } from './hash-one.js';
import { STAT_FIELDS, statSlice } from './stat-slice.js';

/** A slice of files to read and hash (the first `head` and last `tail` bytes of each). */
export interface SmallJob {
  readonly op: 'hash';
  readonly id: number;
  readonly algorithm: HashAlgorithm;
  readonly head: number;
  readonly tail: number;
  readonly paths: readonly string[];
  readonly sizes: readonly number[];
}

/** A slice of paths to stat (following symlinks with `follow`). */
export interface StatJob {
  readonly op: 'stat';
  readonly id: number;
  readonly follow: boolean;
  readonly paths: readonly string[];
}

/** A job of the helper thread. */
export type HelperJob = SmallJob | StatJob;

/** What every reply carries: its job's id and `[index, code, message]` of each path that failed. */
export interface HelperReply {
  readonly id: number;
  readonly errors: [number, string, string][];
}

/** The digests of a hash job, in its order (`null` for a file that failed: see `errors`). */
export interface SmallReply extends HelperReply {
  readonly digests: (string | null)[];
  readonly bytes: number;
}

/** The facts of a stat job: `statSlice`'s numbers, `STAT_FIELDS` per path. */
export interface StatReply extends HelperReply {
  readonly facts: Float64Array;
}

const toolsOf = new Map<HashAlgorithm, HashTools>();

async function hash(job: SmallJob): Promise<SmallReply> {
  // Loaded on the first hash job: a thread started for the stat phase answers sooner without @fsw/hash.
  const { hashOne, hashTools } = await import('./hash-one.js');
  let tools = toolsOf.get(job.algorithm);
  if (tools === undefined) {
    tools = await hashTools(job.algorithm);
    toolsOf.set(job.algorithm, tools);
  }
  const digests: (string | null)[] = new Array(job.paths.length);
  const errors: [number, string, string][] = [];
  let bytes = 0;
  for (let i = 0; i < job.paths.length; i++) {
    try {
      const size = job.sizes[i]!;
      digests[i] = hashOne(job.paths[i]!, size, job.head, job.tail, tools);
      bytes += Math.min(job.head + job.tail, size);
    } catch (error) {
      digests[i] = null;
      const e = DedupError.is(error) ? error : new DedupError('E_IO', String(error));
      errors.push([i, e.code, e.message]);
    }
  }
  return { id: job.id, digests, errors, bytes };
}

function stat(job: StatJob): StatReply {
  const facts = new Float64Array(job.paths.length * STAT_FIELDS);
  const errors: [number, string, string][] = [];
  statSlice(job.paths, job.follow, facts, (i, error) => {
    const e = fromErrno(error, { path: job.paths[i]!, family: DedupError, action: 'stat' });
    errors.push([i, e.code, e.message]);
  });
  return { id: job.id, errors, facts };
}

parentPort?.on('message', (job: HelperJob) => {
  if (job.op === 'stat') {
    const reply = stat(job);
    parentPort?.postMessage(reply, [reply.facts.buffer as ArrayBuffer]);
    return;
  }
  hash(job).then(
    (reply) => parentPort?.postMessage(reply),
    (error: unknown) =>
      parentPort?.postMessage({
        id: job.id,
        digests: job.paths.map(() => null),
        errors: job.paths.map((_, i) => [i, 'E_IO', `cannot hash ${job.paths[i]}: ${String(error)}`]),
        bytes: 0,
      } satisfies SmallReply),
  );
});
