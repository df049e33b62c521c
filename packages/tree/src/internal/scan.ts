import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fromErrno, TreeError } from '@fsw/errors';
import pLimit from 'p-limit';
import { type IgnoreMatcher, isIndexDir } from './ignore-rules.js';

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
  readonly ignored: IgnoreMatcher;
  readonly concurrency: number;
  readonly signal?: AbortSignal | undefined;
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Lists every file, directory and symlink below `root` (symlinks not followed; sockets, FIFOs and devices skipped;
 * ignored paths and `.fstree` folders left out, their contents never read), calling `onEntry` as they are found.
 * A directory whose children are all ignored is still reported.
 * @throws TreeError for an unreadable directory, or a name that is not valid UTF-8 (E_INVALID_ARGUMENT)
 */
export async function scanTree(
  root: string,
  options: ScanOptions,
  onEntry: (entry: ScanEntry) => void,
): Promise<void> {
  const limit = pLimit(options.concurrency);
  const { signal, ignored } = options;
  const pending: Promise<void>[] = [];
  let stopped = false;

  const visit = async (dir: string, rel: string): Promise<void> => {
    if (stopped) return;
    signal?.throwIfAborted();
    let dirents: Dirent[];
    try {
      dirents = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      throw fromErrno(error, { path: dir, family: TreeError, action: 'read directory' });
    }
    const stats: Promise<void>[] = [];
    for (const d of dirents) {
      const name = d.name;
      const relativePath = rel === '' ? name : `${rel}/${name}`;
      const isDir = d.isDirectory();
      if (isIndexDir(name, isDir)) continue;
      if (!(isDir || d.isFile() || d.isSymbolicLink())) {
        // DT_UNKNOWN on some filesystems: decide after the lstat below.
        if (d.isFIFO() || d.isSocket() || d.isCharacterDevice() || d.isBlockDevice()) continue;
      }
      if (ignored(relativePath, isDir)) continue;
      const path = join(dir, name);
      stats.push(
        limit(async () => {
          if (stopped) return;
          signal?.throwIfAborted();
          let st: import('node:fs').Stats;
          try {
            st = await lstat(path);
          } catch (error) {
            if (errnoOf(error) === 'ENOENT') {
              if (name.includes('\uFFFD')) {
                throw new TreeError(
                  'E_INVALID_ARGUMENT',
                  `cannot add ${path} to a tree: its name is not valid UTF-8`,
                  {
                    path,
                    cause: error,
                  },
                );
              }
              // Deleted since the directory was read: it is simply not part of this snapshot.
              return;
            }
            throw fromErrno(error, { path, family: TreeError, action: 'stat' });
          }
          const type = st.isFile()
            ? 'file'
            : st.isDirectory()
              ? 'dir'
              : st.isSymbolicLink()
                ? 'symlink'
                : undefined;
          if (type === undefined) return;
          if (type === 'dir' && !isDir && (isIndexDir(name, true) || ignored(relativePath, true))) return;
          onEntry({
            path,
            relativePath,
            name,
            type,
            size: st.size,
            mtimeMs: st.mtimeMs,
            mode: st.mode,
            ino: st.ino,
          });
          if (type === 'dir') pending.push(visit(path, relativePath));
        }),
      );
    }
    await Promise.all(stats);
  };

  pending.push(visit(root, ''));
  // Directories found while others are read are appended to `pending`; wait until no new ones appear.
  for (let i = 0; i < pending.length; i++) {
    try {
      await pending[i];
    } catch (error) {
      stopped = true;
      // Let the reads already queued or running settle before reporting, so no callback fires after we return.
      for (let j = 0; j < pending.length; j++) await Promise.allSettled([pending[j]]);
      throw error;
    }
  }
}
