import { FileWatcher } from './file-watcher.js';
import type { FileEvent, WatchOptions } from './types.js';

/**
 * Watches a folder and yields batches of coalesced {@link FileEvent}s until the loop is left, `signal` aborts or the
 * watcher fails. Leaving the loop (break, return, throw) closes the watcher and frees its native handles.
 *
 * ```ts
 * for await (const batch of watch('src', { ignore: ['node_modules'] })) {
 *   for (const e of batch) console.log(e.type, e.path);
 * }
 * ```
 * @throws WatchError `E_NOT_FOUND`, `E_NOT_DIR`, `E_PERMISSION`, `E_WATCH_LIMIT` (raise
 *   `fs.inotify.max_user_watches`), `E_BACKEND`, `E_INVALID_ARGUMENT`; `E_NOT_FOUND` too when the watched folder is
 *   deleted while watched; `signal.reason` when aborted
 */
export async function* watch(
  path: string,
  options: WatchOptions = {},
): AsyncGenerator<FileEvent[], void, undefined> {
  const watcher = new FileWatcher(path, options);
  try {
    await watcher.start();
    for await (const batch of watcher) yield batch;
  } finally {
    await watcher.close();
  }
}
