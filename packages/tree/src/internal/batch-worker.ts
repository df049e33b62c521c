import { parentPort } from 'node:worker_threads';
import { createHasher } from '@fsw/hash';
import type { BatchReply, BatchRequest } from './batch-runner.js';
import { checkoutFilesSync, type JobState, SYNC_MAX, storeFilesSync } from './file-jobs.js';

// One worker of a BatchRunner: runs each batch of file jobs as a loop of blocking calls and posts back one reply
// per batch. Messages that arrive while the hasher loads wait in the port's queue.
const port = parentPort;
if (port === null) throw new Error('@fsw/tree batch worker must run in a worker thread');
const state: JobState = {
  buffer: Buffer.allocUnsafe(SYNC_MAX),
  hasher: await createHasher('blake3'),
  madeDirs: new Set(),
};
port.on('message', (request: BatchRequest) => {
  let reply: BatchReply;
  try {
    reply =
      request.kind === 'store'
        ? { id: request.id, results: storeFilesSync(state, request.target, request.paths) }
        : { id: request.id, results: checkoutFilesSync(state, request.jobs) };
  } catch (error) {
    reply = { id: request.id, crash: String(error) };
  }
  port.postMessage(reply);
});
