import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DedupError, type FswError, fromErrno } from '@fsw/errors';
import type { DedupFile } from './types.js';

/** What {@link mergeFiles} needs to know of a file. */
export interface FileFacts {
  readonly path: string;
  /** The exact bytes of `path` when a name in it is not valid UTF-8 (`path` then being a lossy form, for display). */
  readonly rawPath?: Buffer | undefined;
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

/** Sorts names with their exact bytes (lossy forms may tie: their bytes decide). */
function sortNames(paths: string[], raws: (Buffer | undefined)[]): void {
  const order = paths.map((_, i) => i);
  order.sort((i, j) => {
    const byPath = comparePaths(paths[i]!, paths[j]!);
    if (byPath !== 0) return byPath;
    const a = raws[i] ?? Buffer.from(paths[i]!);
    const b = raws[j] ?? Buffer.from(paths[j]!);
    return Buffer.compare(a, b);
  });
  const p = order.map((i) => paths[i]!);
  const r = order.map((i) => raws[i]);
  paths.splice(0, paths.length, ...p);
  raws.splice(0, raws.length, ...r);
}

/**
 * Turns listed files into distinct files: paths naming the same inode (hard links, or one file reached through
 * overlapping roots) become one {@link DedupFile}; the same path given twice (even spelled differently) counts once.
 * With `pathsAreDistinct` (one root walked without following symlinks: no file is listed twice), a file with one
 * link cannot have another name and skips the inode lookup, which is most of this function's cost on a large tree.
 */
export function mergeFiles(listed: Iterable<FileFacts>, pathsAreDistinct = false): DedupFile[] {
  const merger = new FileMerger(pathsAreDistinct);
  for (const f of listed) merger.add(f.path, f.size, f.mtimeMs, f.dev ?? 0, f.ino ?? 0, f.nlink, f.rawPath);
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
    const record: Merging = { file, paths: [file.path], raws: [file.rawPath], index: this.#files.length };
    // A placeholder, replaced in finish() once every name of the inode is known.
    this.#files.push(file);
    this.#merging.push(record);
    return record;
  }

  /** Adds a listed file; `raw` is the exact bytes of `path` when its name is not valid UTF-8. */
  add(
    path: string,
    size: number,
    mtimeMs: number,
    dev: number,
    ino: number,
    nlink?: number,
    raw?: Buffer,
  ): void {
    if (this.#pathsAreDistinct && nlink === 1) {
      this.#files.push(
        raw === undefined
          ? { path, paths: [path], size, dev, ino, mtimeMs }
          : { path, rawPath: raw, paths: [path], rawPaths: [raw], size, dev, ino, mtimeMs },
      );
      return;
    }
    const file: DedupFile =
      raw === undefined
        ? { path, paths: [], size, dev, ino, mtimeMs }
        : { path, rawPath: raw, paths: [], size, dev, ino, mtimeMs };
    if (ino === 0) {
      // (A name that is not valid UTF-8 is keyed by its bytes: two such names may share one lossy form.)
      const absolute = raw === undefined ? resolve(path) : `\0${raw.toString('latin1')}`;
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
    if (raw !== undefined) {
      if (!known.raws.some((r) => r?.equals(raw))) {
        known.paths.push(path);
        known.raws.push(raw);
      }
      return;
    }
    const absolute = resolve(path);
    if (!known.paths.some((p, i) => known.raws[i] === undefined && resolve(p) === absolute)) {
      known.paths.push(path);
      known.raws.push(undefined);
    }
  }

  /** The distinct files, in the order their first path was added. */
  finish(): DedupFile[] {
    for (const { file, paths, raws, index } of this.#merging) {
      const anyRaw = raws.some((r) => r !== undefined);
      if (paths.length > 1) {
        if (anyRaw) sortNames(paths, raws);
        else paths.sort(comparePaths);
      }
      const { rawPath: _first, ...rest } = file;
      this.#files[index] = anyRaw
        ? {
            ...rest,
            path: paths[0]!,
            ...(raws[0] !== undefined ? { rawPath: raws[0] } : {}),
            paths,
            rawPaths: raws,
          }
        : { ...rest, path: paths[0]!, paths };
    }
    return this.#files;
  }
}

interface Merging {
  readonly file: DedupFile;
  readonly paths: string[];
  /** The exact bytes of each of `paths` whose name is not valid UTF-8. */
  readonly raws: (Buffer | undefined)[];
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
