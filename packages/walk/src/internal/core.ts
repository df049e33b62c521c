import { isUtf8 } from 'node:buffer';
import type { Dirent, Stats } from 'node:fs';
import { promises as fsp, lstat as lstatCallback, lstatSync, stat as statCallback } from 'node:fs';
import { basename } from 'node:path';
import { fromErrno, WalkError } from '@fsw/errors';
import type { Ignore } from 'ignore';
import type { EntryType, WalkEntry } from '../types.js';
import { createIgnore, type ResolvedOptions } from './options.js';

/** One layer of ignore rules: the patterns of one ignore file (or of the `ignore` option), relative to `base`. */
interface IgnoreLayer {
  /** The directory the rules live in, as a relative path with a trailing `/` (`''` for the root). */
  readonly base: string;
  readonly rules: Ignore;
  readonly parent: IgnoreLayer | undefined;
}

/** The dev+ino of a directory being walked and of its ancestors, to catch symlink loops. */
interface Ancestor {
  readonly key: string;
  readonly parent: Ancestor | undefined;
}

/** A directory waiting to be read. */
export interface DirTask {
  /** The path to read (lossy display form when `raw` is set). */
  readonly path: string;
  /** `path` followed by `/` (the root keeps its own trailing slash). */
  readonly prefix: string;
  /** The exact bytes of `prefix` when some component is not valid UTF-8. */
  readonly rawPrefix: Buffer | undefined;
  /** The relative path of the directory, `''` for the root. */
  readonly rel: string;
  readonly rawRel: Buffer | undefined;
  /** Depth of the directory (root 0). */
  readonly depth: number;
  ignores: IgnoreLayer | undefined;
  readonly ancestors: Ancestor | undefined;
  readonly isRoot: boolean;
}

/** One name read from a directory. */
export interface Listed {
  readonly name: string;
  /** The exact bytes of the name when they are not valid UTF-8 (or the directory itself is not). */
  readonly raw: Buffer | undefined;
  readonly kind: EntryType;
}

/** What a listed name turns into: an entry to yield, a directory to read, or both. */
export interface Item {
  readonly name: string;
  readonly entry: WalkEntry | undefined;
  readonly child: DirTask | undefined;
}

/** Where the fast path puts what it finds. */
export interface Sink {
  /** An entry to yield. */
  entry(entry: WalkEntry): void;
  /** A directory to read; `name` is its base name in `task`. */
  child(child: DirTask, name: string): void;
}

/** The replacement character Node puts where a name holds bytes that are not UTF-8. */
export const REPLACEMENT = '\uFFFD';

const SLASH = Buffer.from('/');

/** Thrown inside a crawl to unwind once the consumer has gone or a failure was decided. */
export const STOP: unique symbol = Symbol('stop');

/** The type of a directory entry; `DT_UNKNOWN` is resolved by Node with an lstat. */
export function kindOf(d: Dirent | Stats): EntryType {
  if (d.isFile()) return 'file';
  if (d.isDirectory()) return 'dir';
  if (d.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** `stat`/`lstat` through the callback API, which costs less per call than `fs.promises` (one stat per entry adds up). */
function statOf(path: string | Buffer, link: boolean): Promise<Stats> {
  return new Promise((resolve, reject) => {
    (link ? lstatCallback : statCallback)(path, (error, stats) => (error ? reject(error) : resolve(stats)));
  });
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function ancestorsInclude(chain: Ancestor | undefined, key: string): boolean {
  for (let a = chain; a !== undefined; a = a.parent) if (a.key === key) return true;
  return false;
}

/** Segment-wise order of relative paths: the order of a depth-first walk whose siblings are sorted by name. */
export function compareRelative(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 47) return -1;
    if (y === 47) return 1;
    return x - y;
  }
  return a.length - b.length;
}

/** Order of names by UTF-16 code units (what `compareRelative` agrees with). */
export function compareNames(a: Item, b: Item): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The filtering and entry-building shared by `walk` and `walkAll`, so both give the same entries for the same
 * options. It decides per listed name whether to yield it and whether to read it, never reading an excluded directory.
 */
export class Walker {
  readonly options: ResolvedOptions;
  readonly root: string;
  skipped = 0;
  /** Entries found so far, for `onProgress`. */
  private found = 0;
  /** Directories found so far (the root included), for `onProgress`. */
  private directories = 1;
  private lastProgress = 0;
  /** False when no option needs a system call per entry: then {@link Walker.scan} is the fast path. */
  readonly perEntryIo: boolean;
  /** `stat` with `syncStat`: the fast path stats each entry itself. */
  private readonly statInScan: boolean;
  private readonly ignoring: boolean;

  constructor(root: string, options: ResolvedOptions) {
    this.root = root;
    this.options = options;
    // Synchronous stats fit the fast path; following symlinks keeps the per-entry path (loops, broken links).
    this.statInScan = options.stat && options.syncStat && !options.followSymlinks;
    this.perEntryIo = (options.stat && !this.statInScan) || options.followSymlinks;
    this.ignoring = options.ignore !== undefined || options.ignoreFiles.length > 0;
  }

  /** Hands a failure below the root to `onError`: counts it when skipped, throws it otherwise. */
  fail(error: WalkError): void {
    if (this.options.onError(error) === 'throw') throw error;
    this.skipped++;
  }

  /** The task of the root directory, with the dev+ino of the root when following symlinks. */
  rootTask(rootStats: Stats): DirTask {
    // Keep the root as given (as `find` prints it), without its trailing slashes.
    let path = this.root;
    while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    return {
      path,
      prefix: path.endsWith('/') ? path : `${path}/`,
      rawPrefix: undefined,
      rel: '',
      rawRel: undefined,
      depth: 0,
      ignores:
        this.options.ignore === undefined
          ? undefined
          : { base: '', rules: this.options.ignore, parent: undefined },
      ancestors: this.options.followSymlinks
        ? { key: `${rootStats.dev}:${rootStats.ino}`, parent: undefined }
        : undefined,
      isRoot: true,
    };
  }

  /** The entry of a root that is not a directory, when the filters keep it. */
  rootEntry(rootStats: Stats, lstats: Stats): WalkEntry | undefined {
    const name = basename(this.root);
    const kind = kindOf(this.options.followSymlinks ? rootStats : lstats);
    if (!this.options.hidden && name.startsWith('.')) return undefined;
    if (!this.typeMatches(kind)) return undefined;
    if (this.options.glob !== undefined && !this.options.glob(name)) return undefined;
    if (this.options.ignore?.ignores(name)) return undefined;
    const entry: WalkEntry = { path: this.root, relativePath: name, name, depth: 0, type: kind };
    return this.options.stat ? withStats(entry, this.options.followSymlinks ? rootStats : lstats) : entry;
  }

  /** Reads the ignore files of a directory before its entries are filtered. */
  async loadIgnores(task: DirTask): Promise<void> {
    for (const file of this.options.ignoreFiles) {
      let text: string;
      const target =
        task.rawPrefix !== undefined
          ? Buffer.concat([task.rawPrefix, Buffer.from(file)])
          : task.prefix + file;
      try {
        text = await fsp.readFile(target, 'utf8');
      } catch (error) {
        const errno = errnoOf(error);
        // No ignore file here (or a directory of that name): nothing to honour.
        if (errno === 'ENOENT' || errno === 'EISDIR' || errno === 'ENOTDIR') continue;
        this.fail(
          fromErrno(error, { path: task.prefix + file, family: WalkError, action: 'read ignore file' }),
        );
        continue;
      }
      task.ignores = {
        base: task.rel === '' ? '' : `${task.rel}/`,
        rules: createIgnore().add(text),
        parent: task.ignores,
      };
    }
  }

  private isIgnored(task: DirTask, rel: string, isDir: boolean): boolean {
    // Deeper layers override shallower ones, as nested .gitignore files do (negation included).
    let verdict = false;
    const layers: IgnoreLayer[] = [];
    for (let l = task.ignores; l !== undefined; l = l.parent) layers.push(l);
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i] as IgnoreLayer;
      const path = rel.slice(layer.base.length) + (isDir ? '/' : '');
      const result = layer.rules.test(path);
      if (result.ignored) verdict = true;
      else if (result.unignored) verdict = false;
    }
    return verdict;
  }

  private typeMatches(kind: EntryType): boolean {
    const want = this.options.type;
    return want === 'any' || want === kind;
  }

  /**
   * The fast path, when no option needs a system call per entry: filters `dirents[from, to)` of a directory whose
   * path is UTF-8 straight into `sink`, without intermediate objects. Returns true when some name was mangled (holds
   * U+FFFD): those are left out, to be re-read as bytes with {@link Walker.lossyNames} and {@link Walker.process}.
   */
  scan(task: DirTask, dirents: readonly Dirent[], from: number, to: number, sink: Sink): boolean {
    const { hidden, maxDepth, glob, type } = this.options;
    const depth = task.depth + 1;
    const descend = depth < maxDepth;
    const relPrefix = task.depth === 0 ? '' : `${task.rel}/`;
    const { prefix } = task;
    const ignoring = this.ignoring;
    let lossy = false;
    const before = this.found;
    for (let i = from; i < to; i++) {
      const d = dirents[i] as Dirent;
      const name = d.name;
      if (!hidden && name.charCodeAt(0) === 46) continue;
      if (name.includes(REPLACEMENT)) {
        lossy = true;
        continue;
      }
      const kind = kindOf(d);
      const rel = relPrefix + name;
      const isDir = kind === 'dir';
      if (ignoring && this.isIgnored(task, rel, isDir)) continue;
      if (isDir && descend) {
        this.directories++;
        sink.child(this.childTask(task, name, undefined, rel, depth, undefined), name);
      }
      if ((type === 'any' || type === kind) && (glob === undefined || glob(rel))) {
        const entry: WalkEntry = { path: prefix + name, relativePath: rel, name, depth, type: kind };
        this.found++;
        if (!this.statInScan) sink.entry(entry);
        else {
          let stats: Stats;
          try {
            stats = lstatSync(entry.path);
          } catch (error) {
            this.found--;
            this.fail(fromErrno(error, { path: entry.path, family: WalkError, action: 'stat' }));
            continue;
          }
          sink.entry(withStats(entry, stats));
        }
      }
    }
    if (this.found !== before) this.progress();
    return lossy;
  }

  private childTask(
    task: DirTask,
    name: string,
    rawName: Buffer | undefined,
    rel: string,
    depth: number,
    ancestors: Ancestor | undefined,
  ): DirTask {
    const raw = rawName !== undefined || task.rawPrefix !== undefined;
    const l: Listed = { name, raw: rawName, kind: 'dir' };
    return {
      path: task.prefix + name,
      prefix: `${task.prefix}${name}/`,
      rawPrefix: raw ? Buffer.concat([this.rawPathOf(task, l), SLASH]) : undefined,
      rel,
      rawRel: raw ? this.rawRelOf(task, l) : undefined,
      depth,
      ignores: task.ignores,
      ancestors,
      isRoot: false,
    };
  }

  /** Turns a batch of listed names into items; synchronous unless an option needs a system call per entry. */
  process(task: DirTask, listed: readonly Listed[]): Item[] | Promise<Item[]> {
    const items = this.items(task, listed);
    if (items instanceof Promise) return items.then((done) => this.counted(done));
    return this.counted(items);
  }

  private counted(items: Item[]): Item[] {
    for (const item of items) {
      if (item.entry !== undefined) this.found++;
      if (item.child !== undefined) this.directories++;
    }
    this.progress();
    return items;
  }

  /** Reports progress if `onProgress` is set and 100 ms went by since the last report (or `final`). */
  progress(final = false): void {
    const report = this.options.onProgress;
    if (report === undefined) return;
    const now = performance.now();
    if (!final && now - this.lastProgress < 100) return;
    this.lastProgress = now;
    report({ entries: this.found, directories: this.directories, skipped: this.skipped });
  }

  private items(task: DirTask, listed: readonly Listed[]): Item[] | Promise<Item[]> {
    if (this.perEntryIo || this.options.stat) return this.processWithIo(task, listed);
    const items: Item[] = [];
    const { hidden } = this.options;
    for (let i = 0; i < listed.length; i++) {
      const l = listed[i] as Listed;
      if (!hidden && l.name.charCodeAt(0) === 46) continue;
      const item = this.decide(task, l, l.kind, undefined);
      if (item !== undefined) items.push(item);
    }
    return items;
  }

  private async processWithIo(task: DirTask, listed: readonly Listed[]): Promise<Item[]> {
    const { hidden } = this.options;
    const results = await Promise.all(
      listed.map((l) => (!hidden && l.name.charCodeAt(0) === 46 ? undefined : this.processOne(task, l))),
    );
    const items: Item[] = [];
    for (const r of results) if (r !== undefined) items.push(r);
    return items;
  }

  private async processOne(task: DirTask, l: Listed): Promise<Item | undefined> {
    const { followSymlinks, stat } = this.options;
    const target =
      l.raw !== undefined || task.rawPrefix !== undefined ? this.rawPathOf(task, l) : task.prefix + l.name;
    let kind = l.kind;
    let stats: Stats | undefined;
    if (followSymlinks && (kind === 'symlink' || kind === 'dir')) {
      try {
        stats = await statOf(target, false);
        kind = kindOf(stats);
      } catch (error) {
        const path = task.prefix + l.name;
        if (kind === 'dir') {
          this.fail(fromErrno(error, { path, family: WalkError, action: 'stat' }));
          return undefined;
        }
        // A broken or looping symlink is reported, then yielded as the symlink it is.
        this.fail(fromErrno(error, { path, family: WalkError, action: 'follow symlink' }));
      }
    }
    return this.decide(task, l, kind, stats, stat ? target : undefined);
  }

  private rawPathOf(task: DirTask, l: Listed): Buffer {
    return Buffer.concat([task.rawPrefix ?? Buffer.from(task.prefix), l.raw ?? Buffer.from(l.name)]);
  }

  private decide(task: DirTask, l: Listed, kind: EntryType, stats: Stats | undefined): Item | undefined;
  private decide(
    task: DirTask,
    l: Listed,
    kind: EntryType,
    stats: Stats | undefined,
    statTarget: string | Buffer | undefined,
  ): Promise<Item | undefined> | Item | undefined;
  private decide(
    task: DirTask,
    l: Listed,
    kind: EntryType,
    stats: Stats | undefined,
    statTarget?: string | Buffer,
  ): Promise<Item | undefined> | Item | undefined {
    const { name } = l;
    const rel = task.depth === 0 ? name : `${task.rel}/${name}`;
    const isDir = kind === 'dir';
    if (this.ignoring && this.isIgnored(task, rel, isDir)) return undefined;
    const depth = task.depth + 1;
    const { maxDepth, glob } = this.options;
    let child: DirTask | undefined;
    if (isDir && depth < maxDepth) {
      let ancestors: Ancestor | undefined;
      let looping = false;
      if (this.options.followSymlinks && stats !== undefined) {
        const key = `${stats.dev}:${stats.ino}`;
        if (ancestorsInclude(task.ancestors, key)) {
          looping = true;
          this.fail(
            new WalkError(
              'E_LOOP',
              `cannot follow ${task.prefix}${name}: it leads back to a directory being walked`,
              {
                path: task.prefix + name,
              },
            ),
          );
        } else ancestors = { key, parent: task.ancestors };
      }
      if (!looping) child = this.childTask(task, name, l.raw, rel, depth, ancestors);
    }
    const wanted = this.typeMatches(kind) && (glob === undefined || glob(rel));
    if (!wanted) return child === undefined ? undefined : { name, entry: undefined, child };
    const entry = this.makeEntry(task, l, rel, depth, kind);
    if (statTarget === undefined) return { name, entry, child };
    return this.addStats(entry, stats, kind, statTarget).then((full) =>
      full === undefined
        ? child === undefined
          ? undefined
          : { name, entry: undefined, child }
        : { name, entry: full, child },
    );
  }

  private rawRelOf(task: DirTask, l: Listed): Buffer {
    const name = l.raw ?? Buffer.from(l.name);
    if (task.depth === 0) return name;
    return Buffer.concat([task.rawRel ?? Buffer.from(task.rel), SLASH, name]);
  }

  private makeEntry(task: DirTask, l: Listed, rel: string, depth: number, kind: EntryType): WalkEntry {
    if (l.raw === undefined && task.rawPrefix === undefined) {
      return { path: task.prefix + l.name, relativePath: rel, name: l.name, depth, type: kind };
    }
    return {
      path: task.prefix + l.name,
      relativePath: rel,
      name: l.name,
      depth,
      type: kind,
      rawPath: this.rawPathOf(task, l),
      rawRelativePath: this.rawRelOf(task, l),
    };
  }

  private async addStats(
    entry: WalkEntry,
    stats: Stats | undefined,
    kind: EntryType,
    target: string | Buffer,
  ): Promise<WalkEntry | undefined> {
    let s = stats;
    // A followed symlink already has the stats of its target; a broken one (kind still symlink) gets its own.
    if (s === undefined || kind === 'symlink') {
      try {
        s = await statOf(target, true);
      } catch (error) {
        this.fail(fromErrno(error, { path: entry.path, family: WalkError, action: 'stat' }));
        return undefined;
      }
    }
    return withStats(entry, s);
  }

  /** Lists a directory fully; names that are not UTF-8 come with their exact bytes. */
  async list(task: DirTask): Promise<Listed[]> {
    if (task.rawPrefix !== undefined) return this.listRaw(task, () => true);
    const dirents = await fsp.readdir(task.path, { withFileTypes: true });
    const listed: Listed[] = [];
    let lossy = false;
    for (const d of dirents) {
      if (d.name.includes(REPLACEMENT)) lossy = true;
      else listed.push({ name: d.name, raw: undefined, kind: kindOf(d) });
    }
    if (lossy) for (const l of await this.lossyNames(task)) listed.push(l);
    return listed;
  }

  /**
   * Re-reads a directory as bytes and returns the names a UTF-8 listing had mangled (those holding U+FFFD),
   * each with its exact bytes unless it is valid UTF-8 after all.
   */
  lossyNames(task: DirTask): Promise<Listed[]> {
    return this.listRaw(task, (name) => name.includes(REPLACEMENT));
  }

  private async listRaw(task: DirTask, keep: (name: string) => boolean): Promise<Listed[]> {
    const dir = task.rawPrefix ?? Buffer.from(task.prefix);
    const dirents = (await fsp.readdir(dir, {
      withFileTypes: true,
      encoding: 'buffer',
    })) as unknown as Dirent<Buffer>[];
    const listed: Listed[] = [];
    for (const d of dirents) {
      const bytes = d.name as Buffer;
      const name = bytes.toString('utf8');
      if (!keep(name)) continue;
      const exact = task.rawPrefix !== undefined || !isUtf8(bytes);
      listed.push({ name, raw: exact ? bytes : undefined, kind: kindOf(d as unknown as Dirent) });
    }
    return listed;
  }

  /** The typed error for a directory that could not be read. */
  readError(task: DirTask, error: unknown): WalkError {
    return fromErrno(error, { path: task.path, family: WalkError, action: 'read directory' });
  }
}

function withStats(e: WalkEntry, s: Stats): WalkEntry {
  // One literal of a fixed shape: a spread here cost more than the lstat itself.
  if (e.rawPath === undefined) {
    return {
      path: e.path,
      relativePath: e.relativePath,
      name: e.name,
      depth: e.depth,
      type: e.type,
      size: s.size,
      mtimeMs: s.mtimeMs,
      mode: s.mode,
      ino: s.ino,
      dev: s.dev,
      nlink: s.nlink,
    };
  }
  return {
    path: e.path,
    relativePath: e.relativePath,
    name: e.name,
    depth: e.depth,
    type: e.type,
    size: s.size,
    mtimeMs: s.mtimeMs,
    mode: s.mode,
    ino: s.ino,
    dev: s.dev,
    nlink: s.nlink,
    rawPath: e.rawPath,
    ...(e.rawRelativePath !== undefined ? { rawRelativePath: e.rawRelativePath } : {}),
  };
}

/** The stat of the root, mapped to `WalkError` (root failures always throw, whatever `onError` says). */
export async function statRoot(root: string): Promise<{ stats: Stats; lstats: Stats }> {
  if (typeof root !== 'string' || root === '') {
    throw new WalkError(
      'E_INVALID_ARGUMENT',
      `the root to walk must be a non-empty path, not ${JSON.stringify(root)}`,
    );
  }
  try {
    const lstats = await fsp.lstat(root);
    const stats = lstats.isSymbolicLink() ? await fsp.stat(root) : lstats;
    return { stats, lstats };
  } catch (error) {
    throw fromErrno(error, { path: root, family: WalkError, action: 'walk' });
  }
}
