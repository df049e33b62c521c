import { dirname } from 'node:path';

/** What the index knows of one path. */
export interface Known {
  readonly ino: number;
  readonly isDir: boolean;
}

/**
 * The inode and kind of every path under the watched root, as of the last delivered batch: it tells a rename
 * (a deleted path and a created path with the same inode) and an atomic save (a "created" path that existed) apart,
 * and whether a deleted path was a folder. Stored as folder -> name -> code, so dropping or moving a folder's subtree
 * touches only that subtree, and names are stored once rather than as full paths.
 */
export class InodeIndex {
  // Files are stored as their inode, folders as -(inode + 1).
  readonly #dirs = new Map<string, Map<string, number>>();
  #size = 0;

  /** Number of paths known. */
  get size(): number {
    return this.#size;
  }

  get(path: string): Known | undefined {
    const code = this.#dirs.get(dirname(path))?.get(basename(path));
    if (code === undefined) return undefined;
    return code < 0 ? { ino: -code - 1, isDir: true } : { ino: code, isDir: false };
  }

  has(path: string): boolean {
    return this.#dirs.get(dirname(path))?.has(basename(path)) === true;
  }

  set(path: string, ino: number, isDir: boolean): void {
    const parent = dirname(path);
    let names = this.#dirs.get(parent);
    if (names === undefined) {
      names = new Map();
      this.#dirs.set(parent, names);
    }
    const name = basename(path);
    const before = names.get(name);
    if (before === undefined) this.#size++;
    else if (before < 0 && !isDir) this.#dropChildren(path);
    names.set(name, isDir ? -ino - 1 : ino);
  }

  /** Forgets a path and, for a folder, everything below it. */
  delete(path: string): void {
    const names = this.#dirs.get(dirname(path));
    const code = names?.get(basename(path));
    if (names === undefined || code === undefined) return;
    names.delete(basename(path));
    this.#size--;
    if (code < 0) this.#dropChildren(path);
  }

  /** Moves a path (and a folder's subtree) to a new name. */
  move(from: string, to: string): void {
    const known = this.get(from);
    if (known === undefined) return;
    const subtree: [string, Map<string, number>][] = [];
    if (known.isDir) this.#collect(from, subtree);
    this.delete(from);
    this.set(to, known.ino, known.isDir);
    for (const [dir, names] of subtree) {
      this.#dirs.set(to + dir.slice(from.length), names);
      this.#size += names.size;
    }
  }

  /** Direct children of a known folder, as [name, isDir]. */
  *children(dir: string): Iterable<[string, boolean]> {
    for (const [name, code] of this.#dirs.get(dir) ?? []) yield [name, code < 0];
  }

  #collect(dir: string, into: [string, Map<string, number>][]): void {
    const names = this.#dirs.get(dir);
    if (names === undefined) return;
    into.push([dir, names]);
    for (const [name, code] of names) if (code < 0) this.#collect(`${dir}/${name}`, into);
  }

  #dropChildren(dir: string): void {
    const subtree: [string, Map<string, number>][] = [];
    this.#collect(dir, subtree);
    for (const [path, names] of subtree) {
      this.#dirs.delete(path);
      this.#size -= names.size;
    }
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
