import { parentPort } from 'node:worker_threads';
import { STAT_FIELDS, type StatFailure, statSlice } from './stat-slice.js';

/** A slice of listed paths to lstat, joined by NUL (one string crosses threads far faster than 1,024). */
export interface StatRequest {
  readonly id: number;
  readonly paths: string;
}

/** The facts of a {@link StatRequest} (the buffer is transferred). */
export interface StatReply {
  readonly id: number;
  readonly facts: Float64Array;
  readonly failures: readonly StatFailure[];
}

// The scan's helper thread: lstat-s slices of paths the main thread listed, while it lists more. Kept to node:fs so
// that it starts in a few milliseconds.
const port = parentPort;
if (port === null) throw new Error('@fsw/tree stat worker must run in a worker thread');
port.on('message', (request: StatRequest) => {
  const paths = request.paths.split('\0');
  const facts = new Float64Array(paths.length * STAT_FIELDS);
  const failures = statSlice(paths, facts);
  const reply: StatReply = { id: request.id, facts, failures };
  port.postMessage(reply, [facts.buffer]);
});
