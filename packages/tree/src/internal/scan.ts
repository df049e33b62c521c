import { lstatSync } from 'node:fs';
import { fromErrno, TreeError, WalkError } from '@fsw/errors';
import { walk } from '@fsw/walk';
import { INDEX_DIR } from './ignore-rules.js';

/** One path found below the root, with the lstat fields a tree and its index need. */
export interface ScanEntry {
  readonly path: string;
  /** `/`-separated, relative to the root. */
  readonly relativePath: string;
  readonly name: string;
  readonly type: 'file' | 'dir' | 'symlink';
  readonly size: number;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly ino: number;
}

/** Options of {@link scanTree}. */
export interface ScanOptions {
  /** gitignore lines of the root's ignore file. */
  readonly ignore: readonly string[];
  readonly concurrency: number;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Lists every file, directory and symlink below `root` through `@fsw/walk` (symlinks not followed; sockets, FIFOs
 * and devices skipped; ignored paths and `.fstree` folders left out, their contents never read), calling `onEntry`
 * as they are found. A directory whose children are all ignored is still reported.
 * @throws TreeError for an unreadable directory, or a name that is not valid UTF-8 (E_INVALID_ARGUMENT)
 */
export async function scanTree(
  root: string,
  options: ScanOptions,
  onEntry: (entry: ScanEntry) => void,
): Promise<void> {
  // `.fstree/` comes last so that no negation in the user's file can bring the index folder back.
  const patterns = [...options.ignore, `${INDEX_DIR}/`];
  try {
    // The walk lists names and types only; the stat is a synchronous lstat here, which measured ~2x faster than
    // the walk's promise-based one for page-cached trees (the walk's readdirs keep running in the thread pool).
    const entries = walk(root, {
      ignore: patterns,
      hidden: true,
      followSymlinks: false,
      concurrency: options.concurrency,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      // An entry deleted between its directory's listing and its stat is simply not part of this snapshot.
      onError: (error) => (error.code === 'E_NOT_FOUND' && error.path !== root ? 'skip' : 'throw'),
    });
    for await (const e of entries) {
      if (e.type === 'other') continue;
      if (e.rawPath !== undefined) {
        throw new TreeError(
          'E_INVALID_ARGUMENT',
          `cannot add ${e.path} to a tree: its name is not valid UTF-8`,
          {
            path: e.path,
          },
        );
      }
      let st: import('node:fs').Stats | undefined;
      try {
        st = lstatSync(e.path, { throwIfNoEntry: false });
      } catch (error) {
        throw fromErrno(error, { path: e.path, family: TreeError, action: 'stat' });
      }
      if (st === undefined) continue;
      const type = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : undefined;
      if (type === undefined) continue;
      onEntry({
        path: e.path,
        relativePath: e.relativePath,
        name: e.name,
        type,
        size: st.size,
        mtimeMs: st.mtimeMs,
        mode: st.mode,
        ino: st.ino,
      });
    }
  } catch (error) {
    if (WalkError.is(error)) {
      throw new TreeError(error.code, error.message, {
        ...(error.path === undefined ? {} : { path: error.path }),
        cause: error,
      });
    }
    throw error;
  }
}
