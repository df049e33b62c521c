import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DedupError, type FswError, fromErrno } from '@fsw/errors';
import type { DedupFile } from './types.js';

/** What {@link mergeFiles} needs to know of a file. */
export interface FileFacts {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly dev?: number | undefined;
  readonly ino?: number | undefined;
  /** The number of hard links; 1 lets {@link mergeFiles} skip its inode lookup when paths cannot repeat. */
  readonly nlink?: number | undefined;
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Turns listed files into distinct files: paths naming the same inode (hard links, or one file reached through
 * overlapping roots) become one {@link DedupFile}; the same path given twice (even spelled differently) counts once.
 * With `pathsAreDistinct` (one root walked without following symlinks: no file is listed twice), a file with one
 * link cannot have another name and skips the inode lookup, which is most of this function's cost on a large tree.
 */
export function mergeFiles(listed: Iterable<FileFacts>, pathsAreDistinct = false): DedupFile[] {
  const files: DedupFile[] = [];
  // dev -> ino -> the paths naming that inode, and where its file goes. Numeric keys: this runs once per file.
  const byDev = new Map<number, Map<number, Merging>>();
  const noInode = new Map<string, Merging>();
  const merging: Merging[] = [];
  const later = (facts: FileFacts): Merging => {
    const record = { facts, paths: [facts.path], index: files.length };
    // A placeholder, replaced below once every name of the inode is known.
    files.push(undefined as unknown as DedupFile);
    merging.push(record);
    return record;
  };
  for (const facts of listed) {
    if (pathsAreDistinct && facts.nlink === 1) {
      files.push(toFile(facts, [facts.path]));
      continue;
    }
    const ino = facts.ino ?? 0;
    if (ino === 0) {
      const absolute = resolve(facts.path);
      if (!noInode.has(absolute)) noInode.set(absolute, later(facts));
      continue;
    }
    const dev = facts.dev ?? 0;
    let inodes = byDev.get(dev);
    if (inodes === undefined) {
      inodes = new Map();
      byDev.set(dev, inodes);
    }
    const known = inodes.get(ino);
    if (known === undefined) {
      inodes.set(ino, later(facts));
      continue;
    }
    // Another name of a known inode: a hard link, unless it is a path already seen spelled differently.
    const absolute = resolve(facts.path);
    if (!known.paths.some((p) => resolve(p) === absolute)) known.paths.push(facts.path);
  }
  for (const { facts, paths, index } of merging) {
    if (paths.length > 1) paths.sort(comparePaths);
    files[index] = toFile(facts, paths);
  }
  return files;
}

interface Merging {
  readonly facts: FileFacts;
  readonly paths: string[];
  readonly index: number;
}

function toFile(facts: FileFacts, paths: string[]): DedupFile {
  return {
    path: paths[0]!,
    paths,
    size: facts.size,
    dev: facts.dev ?? 0,
    ino: facts.ino ?? 0,
    mtimeMs: facts.mtimeMs,
  };
}

/** Options of {@link statFiles}. */
export interface StatFilesOptions {
  readonly signal?: AbortSignal;
  /** Decides what a path that cannot be stat'ed (or is not a regular file) does. @default () => 'throw' */
  readonly onError?: (error: FswError) => 'skip' | 'throw';
}

/**
 * Stats the given paths (following symlinks) into distinct files for {@link scanFiles} / {@link groupDuplicates}.
 * @throws DedupError `E_NOT_FOUND`, `E_PERMISSION`... for a path that cannot be stat'ed, `E_NOT_FILE` for one that
 *   is not a regular file, unless `onError` skips it
 */
export async function statFiles(
  paths: Iterable<string>,
  options: StatFilesOptions = {},
): Promise<DedupFile[]> {
  const onError = options.onError ?? (() => 'throw' as const);
  const facts: FileFacts[] = [];
  for (const path of paths) {
    options.signal?.throwIfAborted();
    let error: DedupError | undefined;
    try {
      const s = await stat(path);
      if (s.isFile()) facts.push({ path, size: s.size, mtimeMs: s.mtimeMs, dev: s.dev, ino: s.ino });
      else error = new DedupError('E_NOT_FILE', `not a regular file: ${path}`, { path });
    } catch (e) {
      error = fromErrno(e, { path, family: DedupError, action: 'stat' });
    }
    if (error !== undefined && onError(error) === 'throw') throw error;
  }
  return mergeFiles(facts);
}
