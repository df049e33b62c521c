import { stat } from 'node:fs/promises';
import { fromErrno, WatchError } from '@fsw/errors';

/** The command that raises the inotify watch limit, quoted in `E_WATCH_LIMIT` messages. */
export const RAISE_WATCHES = 'sysctl fs.inotify.max_user_watches=524288';

/**
 * Turns an error of the native backend into a `WatchError`. The backend only gives text (e.g. `inotify_add_watch on
 * '/x' failed: No space left on device`), so the errno is recognised from the message: ENOSPC from
 * `inotify_add_watch` is the per-user watch limit, never a full disk; EMFILE from `inotify_init` is the per-user
 * instance limit.
 */
export function toWatchError(error: unknown, root: string): WatchError {
  if (error !== null && typeof error === 'object' && (error as { name?: unknown }).name === 'WatchError') {
    return error as WatchError;
  }
  const message = error instanceof Error ? error.message : String(error);
  const where = /on '([^']*)'/.exec(message)?.[1] ?? root;
  if (/No space left on device|ENOSPC/i.test(message)) {
    return new WatchError(
      'E_WATCH_LIMIT',
      `cannot watch ${where}: the inotify watch limit (fs.inotify.max_user_watches) is reached; raise it with ` +
        `\`sudo ${RAISE_WATCHES}\` (add it to /etc/sysctl.conf to keep it), or ignore large folders such as node_modules`,
      { path: where, cause: error },
    );
  }
  if (/inotify/i.test(message) && /Too many open files|EMFILE/i.test(message)) {
    return new WatchError(
      'E_WATCH_LIMIT',
      `cannot watch ${where}: the inotify instance limit (fs.inotify.max_user_instances) is reached; raise it with ` +
        '`sudo sysctl fs.inotify.max_user_instances=1024` or close other watchers',
      { path: where, cause: error },
    );
  }
  const errno = /No such file or directory/i.test(message)
    ? 'ENOENT'
    : /Permission denied/i.test(message)
      ? 'EACCES'
      : /Not a directory/i.test(message)
        ? 'ENOTDIR'
        : undefined;
  if (errno !== undefined)
    return fromErrno({ code: errno, message }, { path: where, family: WatchError, action: 'watch' });
  return new WatchError('E_BACKEND', `cannot watch ${root}: ${message}`, { path: root, cause: error });
}

/**
 * Checks that `path` is a folder that can be watched.
 * @throws WatchError `E_NOT_FOUND` when it does not exist, `E_NOT_DIR` when it is not a folder, `E_PERMISSION`
 */
export async function assertDir(path: string): Promise<void> {
  let isDir: boolean;
  try {
    // Follow a symlinked root: watching a link to a folder watches the folder.
    isDir = (await stat(path)).isDirectory();
  } catch (error) {
    // A dangling symlink is "not found" too: stat reports ENOENT for it.
    throw fromErrno(error, { path, family: WatchError, action: 'watch' });
  }
  if (!isDir) throw new WatchError('E_NOT_DIR', `cannot watch ${path}: not a directory`, { path });
}
