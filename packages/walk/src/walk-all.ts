import type { Dirent } from 'node:fs';
import * as nativeFs from 'node:fs';
import { resolve, sep } from 'node:path';
import {
  compareRelative,
  type DirTask,
  type Item,
  kindOf,
  type Listed,
  REPLACEMENT,
  type Sink,
  statRoot,
  Walker,
} from './internal/core.js';
import { resolveOptions } from './internal/options.js';
import type { WalkEntry, WalkOptions } from './types.js';

/** What `walkAll()` resolves to: the entries, plus how many failures `onError` chose to skip. */
export type WalkAllResult = WalkEntry[] & {
  /** Failures below the root that `onError` answered with `'skip'`. */
  readonly skipped: number;
};

const READDIR_OPTIONS = { withFileTypes: true } as const;

type ReaddirCallback = (error: NodeJS.ErrnoException | null, entries: Dirent[]) => void;

/** The directory stand-in handed to fdir: fdir only ever sees the directories it should read next. */
class DirOnly {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  isFile(): boolean {
    return false;
  }
  isDirectory(): boolean {
    return true;
  }
  isSymbolicLink(): boolean {
    return false;
  }
}

/**
 * Walks the tree under `root` and resolves with every entry: the fast collecting path, crawled by fdir. Gives the
 * same entries as {@link walk} for the same options (in no particular order unless `sort` is set, then the order
 * `walk` yields with `sort`).
 *
 * @param root The directory (or file) to walk.
 * @param options See {@link WalkOptions}.
 * @returns The entries, with a `skipped` count.
 * @throws WalkError `E_NOT_FOUND` when the root does not exist, `E_PERMISSION` when it cannot be read,
 *   `E_INVALID_ARGUMENT` for bad options; failures below the root as `onError` decides (default: thrown).
 *   Aborting `signal` rejects with `signal.reason` at once, even while a large directory is being read.
 */
export async function walkAll(root: string, options?: WalkOptions): Promise<WalkAllResult> {
  const resolved = resolveOptions(options);
  const walker = new Walker(root, resolved);
  const { signal } = resolved;
  signal?.throwIfAborted();
  const { stats, lstats } = await statRoot(root);
  signal?.throwIfAborted();
  const entries: WalkEntry[] = [];
  if (!stats.isDirectory()) {
    const entry = walker.rootEntry(stats, lstats);
    if (entry !== undefined) entries.push(entry);
    return finish(entries, walker);
  }
  if (resolved.maxDepth === 0) return finish(entries, walker);
  const rootTask = walker.rootTask(stats);
  const { fdir } = await import('fdir');
  await crawl(fdir, walker, rootTask, entries);
  if (resolved.sort) entries.sort((a, b) => compareRelative(a.relativePath, b.relativePath));
  return finish(entries, walker);
}

function finish(entries: WalkEntry[], walker: Walker): WalkAllResult {
  walker.progress(true);
  Object.defineProperty(entries, 'skipped', { value: walker.skipped, enumerable: false });
  return entries as WalkAllResult;
}

function crawl(
  Fdir: typeof import('fdir').fdir,
  walker: Walker,
  rootTask: DirTask,
  entries: WalkEntry[],
): Promise<void> {
  const { signal, concurrency, ignoreFiles } = walker.options;
  const controller = new AbortController();
  // fdir names directories by its own spelling of their paths (with a trailing slash): map those to our tasks.
  const tasks = new Map<string, DirTask>();
  let first = true;
  let failure: { value: unknown } | undefined;
  let running = 0;
  const waiting: (() => void)[] = [];

  return new Promise<void>((done, reject) => {
    const fail = (value: unknown) => {
      if (failure !== undefined) return;
      failure = { value };
      controller.abort();
      signal?.removeEventListener('abort', onAbort);
      reject(value);
    };
    const onAbort = () => fail(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });

    /** Where found entries go, and how directories to read next reach fdir (keyed by fdir's spelling of the path). */
    const sinkFor = (task: KeyedTask, next: Dirent[]): Sink => ({
      entry: (entry) => {
        entries.push(entry);
      },
      child: (child, name) => {
        if (child.rawPrefix !== undefined) {
          // fdir reads by string path, which cannot spell a name that is not UTF-8: walk those subtrees ourselves.
          next.push(new SubWalk(child) as unknown as Dirent);
        } else {
          tasks.set(`${task.key}${name}${sep}`, child);
          next.push(new DirOnly(name) as unknown as Dirent);
        }
      },
    });

    const accept = (sink: Sink, items: readonly Item[]): void => {
      for (const item of items) {
        if (item.entry !== undefined) sink.entry(item.entry);
        if (item.child !== undefined) sink.child(item.child, item.name);
      }
    };

    /** Names the fast path left out, per-entry system calls, ignore files, subtrees fdir cannot spell. */
    const slowPath = async (
      task: KeyedTask,
      dirents: Dirent[] | undefined,
      next: Dirent[],
    ): Promise<Dirent[]> => {
      const sink = sinkFor(task, next);
      let listed: Listed[];
      if (dirents === undefined) {
        // Only the mangled names are left to read (as bytes); the rest went through the fast path.
        listed = await walker.lossyNames(task);
      } else {
        listed = [];
        let lossy = false;
        for (const d of dirents) {
          if (d.name.includes(REPLACEMENT)) lossy = true;
          else listed.push({ name: d.name, raw: undefined, kind: kindOf(d) });
        }
        if (lossy) listed = listed.concat(await walker.lossyNames(task));
      }
      let items = walker.process(task, listed);
      if (items instanceof Promise) items = await items;
      accept(sink, items);
      // Subtrees fdir cannot spell are walked here, before this directory is reported done.
      for (const d of next)
        if (d instanceof SubWalk) await subWalk(walker, d.task, entries, () => failure !== undefined);
      return next.filter((d) => !(d instanceof SubWalk));
    };

    const readdir = (path: string, _options: unknown, callback: ReaddirCallback): void => {
      let task: DirTask | undefined;
      if (first) {
        first = false;
        task = rootTask;
      } else {
        task = tasks.get(path);
        tasks.delete(path);
      }
      if (task === undefined || failure !== undefined) {
        callback(null, []);
        return;
      }
      (task as KeyedTask).key = path;
      const current = task as KeyedTask;
      const finish = (next: Dirent[]) => {
        running--;
        waiting.shift()?.();
        callback(null, failure === undefined ? next : []);
      };
      const fault = (error: unknown) => {
        fail(error);
        finish([]);
      };
      const list = (dirents: Dirent[]) => {
        const next: Dirent[] = [];
        if (walker.perEntryIo) {
          slowPath(current, dirents, next).then(finish, fault);
          return;
        }
        // The fast path: filtered synchronously in fdir's callback, no promise per directory.
        const lossy = walker.scan(current, dirents, 0, dirents.length, sinkFor(current, next));
        if (lossy) slowPath(current, undefined, next).then(finish, fault);
        else finish(next);
      };
      const read = () => {
        nativeFs.readdir(path, READDIR_OPTIONS, (error, dirents) => {
          if (failure !== undefined) return finish([]);
          try {
            if (error) {
              const err = walker.readError(current, error);
              if (current.isRoot) throw err;
              walker.fail(err);
              finish([]);
            } else list(dirents);
          } catch (thrown) {
            fault(thrown);
          }
        });
      };
      const start = () => {
        running++;
        if (ignoreFiles.length > 0) walker.loadIgnores(current).then(read, fault);
        else read();
      };
      if (running < concurrency) start();
      else waiting.push(start);
    };

    const fs = { readdir } as unknown as typeof nativeFs;
    new Fdir({ fs, signal: controller.signal } as ConstructorParameters<typeof Fdir>[0])
      .withBasePath()
      .crawl(resolve(rootTask.path))
      .withPromise()
      .then(
        () => {
          if (failure !== undefined) return;
          signal?.removeEventListener('abort', onAbort);
          done();
        },
        (error: unknown) => fail(error),
      );
  });
}

type KeyedTask = DirTask & { key: string };

class SubWalk {
  readonly task: DirTask;
  constructor(task: DirTask) {
    this.task = task;
  }
}

/** Walks a subtree with the streaming crawler's listing (bytes-safe), appending to `entries`. */
async function subWalk(
  walker: Walker,
  task: DirTask,
  entries: WalkEntry[],
  stopped: () => boolean,
): Promise<void> {
  const stack: DirTask[] = [task];
  while (stack.length > 0 && !stopped()) {
    const current = stack.pop() as DirTask;
    if (walker.options.ignoreFiles.length > 0) await walker.loadIgnores(current);
    let listed: Listed[];
    try {
      listed = await walker.list(current);
    } catch (error) {
      walker.fail(walker.readError(current, error));
      continue;
    }
    let items = walker.process(current, listed);
    if (items instanceof Promise) items = await items;
    for (const item of items) {
      if (item.entry !== undefined) entries.push(item.entry);
      if (item.child !== undefined) stack.push(item.child);
    }
  }
}
