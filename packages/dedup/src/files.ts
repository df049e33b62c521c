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
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Turns listed files into distinct files: paths naming the same inode (hard links, or one file reached through
 * overlapping roots) become one {@link DedupFile}; the same path given twice (even spelled differently) counts once.
 */
export function mergeFiles(listed: Iterable<FileFacts>): DedupFile[] {
  const seen = new Set<string>();
  const byInode = new Map<string, { facts: FileFacts; paths: string[] }>();
  for (const facts of listed) {
    const absolute = resolve(facts.path);
    if (seen.has(absolute)) continue;
    seen.add(absolute);
    const dev = facts.dev ?? 0;
    const ino = facts.ino ?? 0;
    const key = ino === 0 ? `path:${absolute}` : `${dev}:${ino}`;
    const known = byInode.get(key);
    if (known) known.paths.push(facts.path);
    else byInode.set(key, { facts, paths: [facts.path] });
  }
  const files: DedupFile[] = [];
  for (const { facts, paths } of byInode.values()) {
    paths.sort(comparePaths);
    files.push({
      path: paths[0]!,
      paths,
      size: facts.size,
      dev: facts.dev ?? 0,
      ino: facts.ino ?? 0,
      mtimeMs: facts.mtimeMs,
    });
  }
  return files;
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
