import type { Dirent, Stats } from 'node:fs';
import { lstatSync, readdirSync } from 'node:fs';
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

// Entries read between two turns of the event loop (a few milliseconds of system calls).
const SLICE = 2000;

function isGone(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Lists everything below `dir` (not `dir` itself) with its inode, honouring the ignore rules (and loading the ignore
 * files of each folder before filtering it). Entries that vanish while being read are skipped: the watcher reports
 * their deletion. Other failures (permissions) are thrown.
 *
 * Synchronous system calls in slices of about {@link SLICE} entries, yielding to the event loop between slices: an
 * `lstat` through the thread pool costs several times the call itself, and a watcher's start-up is mostly these.
 */
export async function scan(dir: string, options: ScanOptions): Promise<void> {
  const { root, rules, recursive, signal, onEntry } = options;
  const prefix = `${root}/`;
  const queue: string[] = [dir];
  let done = 0;
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const at = queue.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(at, { withFileTypes: true });
    } catch (error) {
      if (at !== dir && isGone(error)) continue;
      throw error;
    }
    const relDir = at === root ? '' : at.slice(prefix.length);
    if (!rules.empty) await rules.loadDir(relDir);
    for (const entry of entries) {
      const path = `${at}/${entry.name}`;
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      if (!rules.empty && rules.ignores(rel, entry.isDirectory())) continue;
      let stat: Stats | undefined;
      try {
        stat = lstatSync(path, { throwIfNoEntry: false });
      } catch (error) {
        if (isGone(error)) continue;
        throw error;
      }
      if (stat === undefined) continue;
      const isDir = stat.isDirectory();
      onEntry({ path, ino: stat.ino, isDir, mtimeMs: stat.mtimeMs, size: stat.size });
      if (isDir && recursive) queue.push(path);
    }
    done += entries.length + 1;
    if (done >= SLICE) {
      done = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
