import { dirname } from 'node:path';

/** What the index knows of one path, as of the last batch that concerned it. */
export interface Known {
  readonly ino: number;
  readonly isDir: boolean;
  readonly mtimeMs: number;
  readonly size: number;
}

/**
 * The inode, kind, size and modification time of every path under the watched root, as of the last delivered batch:
 * it tells a rename (a deleted path and a created path with the same inode) and an atomic save (a "created" path
 * that existed) apart, knows whether a deleted path was a folder, and lets a folder be compared with the disk when
 * the native backend may have dropped notifications. Stored as folder -> name -> entry, so dropping or moving a
 * folder's subtree touches only that subtree, and names are stored once rather than as full paths.
 */
export class InodeIndex {
  readonly #dirs = new Map<string, Map<string, Known>>();
  #size = 0;

  /** Number of paths known. */
  get size(): number {
    return this.#size;
  }

  get(path: string): Known | undefined {
    return this.#dirs.get(dirname(path))?.get(basename(path));
  }

  has(path: string): boolean {
    return this.#dirs.get(dirname(path))?.has(basename(path)) === true;
  }

  set(path: string, known: Known): void {
    const parent = dirname(path);
    let names = this.#dirs.get(parent);
    if (names === undefined) {
      names = new Map();
      this.#dirs.set(parent, names);
    }
    const name = basename(path);
    const before = names.get(name);
    if (before === undefined) this.#size++;
    // A folder replaced by a file, or by another folder: what was below it is gone.
    else if (before.isDir && (!known.isDir || before.ino !== known.ino)) this.#dropChildren(path);
    names.set(name, known);
  }

  /** Forgets a path and, for a folder, everything below it. */
  delete(path: string): void {
    const names = this.#dirs.get(dirname(path));
    const known = names?.get(basename(path));
    if (names === undefined || known === undefined) return;
    names.delete(basename(path));
    this.#size--;
    if (known.isDir) this.#dropChildren(path);
  }

  /** Moves a path (and a folder's subtree) to a new name. */
  move(from: string, to: string): void {
    const known = this.get(from);
    if (known === undefined) return;
    const subtree: [string, Map<string, Known>][] = [];
    if (known.isDir) this.#collect(from, subtree);
    this.delete(from);
    this.set(to, known);
    for (const [dir, names] of subtree) {
      this.#dirs.set(to + dir.slice(from.length), names);
      this.#size += names.size;
    }
  }

  /** Direct children of a known folder, as [name, entry]. */
  children(dir: string): ReadonlyMap<string, Known> {
    return this.#dirs.get(dir) ?? EMPTY;
  }

  #collect(dir: string, into: [string, Map<string, Known>][]): void {
    const names = this.#dirs.get(dir);
    if (names === undefined) return;
    into.push([dir, names]);
    for (const [name, known] of names) if (known.isDir) this.#collect(`${dir}/${name}`, into);
  }

  #dropChildren(dir: string): void {
    const subtree: [string, Map<string, Known>][] = [];
    this.#collect(dir, subtree);
    for (const [path, names] of subtree) {
      this.#dirs.delete(path);
      this.#size -= names.size;
    }
  }
}

const EMPTY: ReadonlyMap<string, Known> = new Map();

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
