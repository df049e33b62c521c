import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fromErrno, TreeError } from '@fsw/errors';
import ignore from 'ignore';

/** The folder holding the local index; never part of a tree. */
export const INDEX_DIR = '.fstree';

/** Decides whether a relative path (`/`-separated) is ignored; `isDir` selects `dir/`-only patterns. */
export type IgnoreMatcher = (relativePath: string, isDir: boolean) => boolean;

/** Builds a matcher from gitignore text (full gitignore semantics, `!` negation included). */
export function matcherFromText(text: string | undefined): IgnoreMatcher {
  // `.fstree` is excluded separately (see isIndexDir) so that no negation in the user's file can bring it back.
  if (text === undefined || text.trim() === '') return () => false;
  const rules = ignore({ allowRelativePaths: false }).add(text);
  return (relativePath, isDir) => rules.ignores(isDir ? `${relativePath}/` : relativePath);
}

/** Reads `<dir>/<name>` as gitignore text; `undefined` when there is no such file. */
export async function readIgnoreText(dir: string, name: string): Promise<string | undefined> {
  if (name === '') return undefined;
  const path = join(dir, name);
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return undefined;
    throw fromErrno(error, { path, family: TreeError, action: 'read ignore file' });
  }
}

/** True for the index folder `.fstree` (at any depth), which never belongs to a tree. */
export function isIndexDir(name: string, isDir: boolean): boolean {
  return isDir && name === INDEX_DIR;
}

/**
 * `path` relative to `dir` (`/`-separated) when it lies strictly below it, else `undefined`. Used for the store:
 * one kept inside the folder it stores is never part of its tree, and never touched by a checkout of it.
 */
export function pathBelow(dir: string, path: string): string | undefined {
  const rel = relative(resolve(dir), resolve(path));
  // `..` or `../x` is outside; a name such as `..cache` is inside.
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
  return rel.split(sep).join('/');
}

/**
 * The ignore line matching exactly the folder `rel`: anchored (leading `/`), ending in `/` (no trailing-space rule),
 * with the glob characters escaped.
 */
export function folderRule(rel: string): string {
  return `/${rel.replace(/[\\*?[]/g, (c) => `\\${c}`)}/`;
}
