import { parentPort } from 'node:worker_threads';
import { DedupError } from '@fsw/errors';
import type { HashAlgorithm } from '@fsw/hash';
import { type HashTools, hashOne, hashTools } from './hash-one.js';

/** A slice of files to read and hash (the first `head` and last `tail` bytes of each). */
export interface SmallJob {
  readonly id: number;
  readonly algorithm: HashAlgorithm;
  readonly head: number;
  readonly tail: number;
  readonly paths: readonly string[];
  readonly sizes: readonly number[];
}

/** The digests of a job, in its order (`null` for a file that failed: see `errors`). */
export interface SmallReply {
  readonly id: number;
  readonly digests: (string | null)[];
  /** `[index, code, message]` of each failed file. */
  readonly errors: [number, string, string][];
  readonly bytes: number;
}

const toolsOf = new Map<HashAlgorithm, HashTools>();

async function run(job: SmallJob): Promise<SmallReply> {
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

parentPort?.on('message', (job: SmallJob) => {
  run(job).then(
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
