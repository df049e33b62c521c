import { parentPort, workerData } from 'node:worker_threads';
import {
  type BatchMessage,
  type BatchReply,
  CROSS_DEVICE,
  NO_REPLACE,
  type SerializedError,
  SYMLINK,
  serializeError,
  type WorkerInit,
} from './protocol.js';
import { SyncCopier } from './sync-file.js';

// A copy worker: runs batches of small jobs with blocking calls and answers each batch with one message.
const init = workerData as WorkerInit;
const copier = new SyncCopier(init.config);
const port = parentPort;

port?.on('message', (batch: BatchMessage) => {
  const count = batch.src.length;
  const placed = new Uint8Array(count);
  const crossed: number[] = [];
  let error: SerializedError | undefined;
  let ran = 0;
  while (ran < count && Atomics.load(init.stop, 0) === 0) {
    const i = ran++;
    const flags = batch.flags[i] ?? 0;
    const wasCrossing = (flags & CROSS_DEVICE) !== 0;
    copier.crossDevice = wasCrossing;
    try {
      placed[i] = copier.run({
        kind: flags & SYMLINK ? 'symlink' : 'file',
        src: batch.src[i] as string,
        dest: batch.dest[i] as string,
        size: batch.numbers[3 * i] ?? 0,
        mode: batch.numbers[3 * i + 1] ?? 0,
        mtimeMs: batch.numbers[3 * i + 2] ?? 0,
        noReplace: (flags & NO_REPLACE) !== 0,
      });
    } catch (e) {
      error = serializeError(e);
    }
    if (copier.crossDevice && !wasCrossing) crossed.push(i);
    if (error !== undefined) break;
  }
  const reply: BatchReply = { ran, placed: placed.subarray(0, ran), error, crossed };
  port.postMessage(reply);
});
// Loaded: the main thread sends batches only from now on.
port?.postMessage('ready');
