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
  const merger = new FileMerger(pathsAreDistinct);
  for (const f of listed) merger.add(f.path, f.size, f.mtimeMs, f.dev ?? 0, f.ino ?? 0, f.nlink);
  return merger.finish();
}

/** {@link mergeFiles} one file at a time, from plain numbers: no {@link FileFacts} object per file. */
export class FileMerger {
  readonly #files: DedupFile[] = [];
  // dev -> ino -> the paths naming that inode, and where its file goes. Numeric keys: this runs once per file.
  readonly #byDev = new Map<number, Map<number, Merging>>();
  readonly #noInode = new Map<string, Merging>();
  readonly #merging: Merging[] = [];
  readonly #pathsAreDistinct: boolean;

  constructor(pathsAreDistinct: boolean) {
    this.#pathsAreDistinct = pathsAreDistinct;
  }

  #later(file: DedupFile): Merging {
    const record = { file, paths: [file.path], index: this.#files.length };
    // A placeholder, replaced in finish() once every name of the inode is known.
    this.#files.push(file);
    this.#merging.push(record);
    return record;
  }

  add(path: string, size: number, mtimeMs: number, dev: number, ino: number, nlink?: number): void {
    if (this.#pathsAreDistinct && nlink === 1) {
      this.#files.push({ path, paths: [path], size, dev, ino, mtimeMs });
      return;
    }
    const file: DedupFile = { path, paths: [], size, dev, ino, mtimeMs };
    if (ino === 0) {
      const absolute = resolve(path);
      if (!this.#noInode.has(absolute)) this.#noInode.set(absolute, this.#later(file));
      return;
    }
    let inodes = this.#byDev.get(dev);
    if (inodes === undefined) {
      inodes = new Map();
      this.#byDev.set(dev, inodes);
    }
    const known = inodes.get(ino);
    if (known === undefined) {
      inodes.set(ino, this.#later(file));
      return;
    }
    // Another name of a known inode: a hard link, unless it is a path already seen spelled differently.
    const absolute = resolve(path);
    if (!known.paths.some((p) => resolve(p) === absolute)) known.paths.push(path);
  }

  /** The distinct files, in the order their first path was added. */
  finish(): DedupFile[] {
    for (const { file, paths, index } of this.#merging) {
      if (paths.length > 1) paths.sort(comparePaths);
      this.#files[index] = { ...file, path: paths[0]!, paths };
    }
    return this.#files;
  }
}

interface Merging {
  readonly file: DedupFile;
  readonly paths: string[];
  readonly index: number;
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
