import { parentPort } from 'node:worker_threads';
import { DedupError } from '@fsw/errors';
import type { HashAlgorithm } from '@fsw/hash';
import { digester } from './digest.js';
import { readSmall } from './read-small.js';

/** A slice of small files to read and hash. */
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

const digesters = new Map<HashAlgorithm, (bytes: Uint8Array) => string>();
const buffer = Buffer.allocUnsafe(64 * 1024 + 1);

async function run(job: SmallJob): Promise<SmallReply> {
  let digest = digesters.get(job.algorithm);
  if (digest === undefined) {
    digest = await digester(job.algorithm);
    digesters.set(job.algorithm, digest);
  }
  const digests: (string | null)[] = new Array(job.paths.length);
  const errors: [number, string, string][] = [];
  let bytes = 0;
  for (let i = 0; i < job.paths.length; i++) {
    try {
      const n = readSmall(job.paths[i]!, job.sizes[i]!, job.head, job.tail, buffer);
      bytes += n;
      digests[i] = digest(buffer.subarray(0, n));
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
