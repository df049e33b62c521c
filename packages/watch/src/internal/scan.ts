import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import type { IgnoreRules } from './ignore-rules.js';

/** One entry found by {@link scan}. */
export interface Scanned {
  readonly path: string;
  readonly ino: number;
  readonly isDir: boolean;
  readonly mtimeMs: number;
  readonly size: number;
}

/** Options of {@link scan}. */
export interface ScanOptions {
  /** The watched root: rules take paths relative to it. */
  readonly root: string;
  readonly rules: IgnoreRules;
  /** Descend below the first level. */
  readonly recursive: boolean;
  readonly signal?: AbortSignal | undefined;
  readonly onEntry: (entry: Scanned) => void;
}

const DIRS_AT_ONCE = 8;

function isGone(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Lists everything below `dir` (not `dir` itself) with its inode, honouring the ignore rules (and loading the ignore
 * files of each folder before filtering it). Entries that vanish while being read are skipped: the watcher reports
 * their deletion. Other failures (permissions) are thrown.
 */
export async function scan(dir: string, options: ScanOptions): Promise<void> {
  const { root, rules, recursive, signal, onEntry } = options;
  const prefix = `${root}/`;
  const queue: string[] = [dir];
  const readOne = async (at: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(at, { withFileTypes: true });
    } catch (error) {
      if (at !== dir && isGone(error)) return;
      throw error;
    }
    const relDir = at === root ? '' : at.slice(prefix.length);
    if (!rules.empty) await rules.loadDir(relDir);
    await Promise.all(
      entries.map(async (entry) => {
        const path = `${at}/${entry.name}`;
        const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
        if (!rules.empty && rules.ignores(rel, entry.isDirectory())) return;
        let stat: Stats;
        try {
          stat = await lstat(path);
        } catch (error) {
          if (isGone(error)) return;
          throw error;
        }
        const isDir = stat.isDirectory();
        onEntry({ path, ino: stat.ino, isDir, mtimeMs: stat.mtimeMs, size: stat.size });
        if (isDir && recursive) queue.push(path);
      }),
    );
  };
  // A small pool of folders in flight: enough to keep the thread pool busy without a burst of open descriptors.
  await new Promise<void>((resolve, reject) => {
    let active = 0;
    let failed = false;
    const pump = (): void => {
      if (failed) return;
      if (signal?.aborted) {
        failed = true;
        reject(signal.reason);
        return;
      }
      while (active < DIRS_AT_ONCE && queue.length > 0) {
        const next = queue.shift()!;
        active++;
        readOne(next).then(
          () => {
            active--;
            pump();
          },
          (error: unknown) => {
            failed = true;
            reject(error);
          },
        );
      }
      if (active === 0 && queue.length === 0) resolve();
    };
    pump();
  });
}
