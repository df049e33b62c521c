import { readlink, stat as statPath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fromErrno, TreeError } from '@fsw/errors';
import pLimit from 'p-limit';
import { encodeTree } from '../codec.js';
import type { ObjectKind, TreeEntry } from '../types.js';
import {
  type BatchRunner,
  defaultWorkers,
  mainThreadRunner,
  WORKERS_AFTER,
  workerRunner,
} from './batch-runner.js';
import { failureError, isFailure, type StoreOutcome, type StoreTarget } from './file-jobs.js';
import { folderRule, pathBelow, readIgnoreText } from './ignore-rules.js';
import { type IndexRecord, IndexView, loadIndexView, saveIndex } from './index-file.js';
import { ObjectPresence } from './presence.js';
import { type ScanEntry, scanTree } from './scan.js';

/** Progress of a write-tree, reported (throttled) while it runs and once at the end. */
export interface WriteTreeProgress {
  /** Files found so far (the final count once the walk is done). */
  readonly filesTotal: number;
  /** Files whose digest is known (hashed or taken from the index). */
  readonly filesDone: number;
  /** Bytes of the files found so far. */
  readonly bytesTotal: number;
  /** Bytes of the files done. */
  readonly bytesDone: number;
  /** Files actually read and hashed. */
  readonly filesHashed: number;
  /** Files whose digest came from the index, unread. */
  readonly filesReused: number;
  /** Directories serialised (set at the end). */
  readonly trees: number;
  /** True on the last call. */
  readonly done: boolean;
}

/** Where the objects of a tree being built go: the store, or nowhere (digests only). */
export interface TreeSink {
  /** Hashes (and stores) a file; returns its digest and the stat it had when opened. */
  putFile(path: string): Promise<{ digest: string; size: number; mtimeMs: number; ino: number }>;
  putTree(bytes: Uint8Array): Promise<string>;
  /** Whether a file digest taken from the index is still backed by an object. */
  hasFile(digest: string): Promise<boolean>;
  /** The same, answered synchronously, when the sink can. */
  hasFileSync?: ((digest: string) => boolean) | undefined;
  /**
   * Small files may be read, hashed and stored in batches of blocking calls (internal/file-jobs.ts) into this store
   * (`target` undefined: hashed only).
   */
  batches?: { readonly target: StoreTarget | undefined } | undefined;
}

/** Resolved options of a tree build. */
export interface BuildOptions {
  readonly sink: TreeSink;
  readonly ignoreFile: string;
  readonly useIndex: boolean;
  readonly saveIndex: boolean;
  readonly concurrency: number;
  readonly onProgress?: ((progress: WriteTreeProgress) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Keeps the serialised trees by digest (for verifyTree). */
  readonly keepTrees?: Map<string, TreeEntry[]> | undefined;
  /** A folder below `dir` never to include (the store itself, when it lives inside the tree). */
  readonly exclude?: string | undefined;
  /** Worker threads for batches; 0: the main thread. @default automatic (threads past WORKERS_AFTER files) */
  readonly workers?: number | undefined;
}

/** The default number of files hashed at once. */
export function defaultConcurrency(): number {
  return Math.max(8, availableParallelism() * 2);
}

interface DirNode {
  readonly rel: string;
  readonly depth: number;
  mode: number;
  /** Folders and symlinks; files are kept apart (below) and made entries only when the tree is encoded. */
  readonly children: TreeEntry[];
  readonly fileNames: string[];
  /** Each file's index record (its digest, full mode and stat), in the order of `fileNames`. */
  /** A record made this run, or the number of an unchanged one in the old index. */
  readonly fileRecords: (IndexRecord | number)[];
  /** Where its record is in the new index (-1: the root, which has none). */
  slot: number;
  /** Its record in the old index, when that has its tree digest and the same mode. */
  old: IndexRecord | undefined;
  /** Children equal to an entry of the old tree (a file taken from the index, a folder with its old digest). */
  same: number;
  /** A child differs from (or is not in) the old tree. */
  changed: boolean;
}

const PROGRESS_EVERY_MS = 100;

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

function* digestsOf(records: Iterable<[string, IndexRecord]>): Iterable<string> {
  for (const [, r] of records) if (r.digest !== '') yield r.digest;
}

/** The kind of store object a record's digest names. */
function kindOf(type: IndexRecord['type']): ObjectKind {
  return type === 'dir' ? 'tree' : 'file';
}

/** A folder's tree entries: its folders and symlinks, and its files made entries from their records. */
function entriesOf(node: DirNode, view: IndexView): TreeEntry[] {
  const entries = node.children.slice();
  for (let i = 0; i < node.fileNames.length; i++) {
    const r = node.fileRecords[i]!;
    const name = node.fileNames[i]!;
    entries.push(
      typeof r === 'number'
        ? { name, digest: view.digest(r), type: 'file', mode: view.mode(r) & 0o7777 }
        : { name, digest: r.digest, type: 'file', mode: r.mode & 0o7777 },
    );
  }
  return entries;
}

/** A file on its way to being read, with its place in the new index. */
type FileEntry = ScanEntry & { readonly slot: number };

/** Builds the Merkle tree of `dir` bottom-up and returns the root digest. */
export async function buildTree(dir: string, options: BuildOptions): Promise<string> {
  const { sink, signal } = options;
  signal?.throwIfAborted();
  const startedAt = Date.now();
  let rootStat: import('node:fs').Stats;
  try {
    rootStat = await statPath(dir);
  } catch (error) {
    throw fromErrno(error, { path: dir, family: TreeError, action: 'read directory' });
  }
  if (!rootStat.isDirectory()) throw new TreeError('E_NOT_DIR', `not a directory: ${dir}`, { path: dir });

  const ignoreText = await readIgnoreText(dir, options.ignoreFile);
  const ignore = ignoreText === undefined ? [] : ignoreText.split(/\r?\n/);
  const excluded = options.exclude === undefined ? undefined : pathBelow(dir, options.exclude);
  if (excluded !== undefined) ignore.push(folderRule(excluded));
  const view = options.useIndex ? await loadIndexView(dir) : IndexView.empty();
  // The new index, in scan order (so that the next run finds each record where its cursor is): paths, and records
  // made this run or numbers of unchanged records of the old index (no object per unchanged file).
  const paths: string[] = [];
  const records: (IndexRecord | number | undefined)[] = [];
  let indexChanged = !options.useIndex;
  /** Entries of the old index met again unchanged (files reused, folders present): all of them means same keys. */
  let oldSeen = 0;
  // Folders whose children are all as in the old tree keep the old tree digest, unencoded (not when the trees are
  // wanted: verifyTree).
  const reuseTrees = options.keepTrees === undefined;

  const newNode = (rel: string, depth: number, mode: number): DirNode => ({
    rel,
    depth,
    mode,
    children: [],
    fileNames: [],
    fileRecords: [],
    slot: -1,
    old: undefined,
    same: 0,
    changed: false,
  });
  const dirs = new Map<string, DirNode>();
  dirs.set('', newNode('', 0, rootStat.mode & 0o7777));
  let lastNode: DirNode | undefined;
  const nodeOf = (rel: string): DirNode => {
    // Entries come folder by folder: the last node is usually the one.
    if (lastNode?.rel === rel) return lastNode;
    let node = dirs.get(rel);
    if (node === undefined) {
      // A child may be reported before its parent's own entry (parallel lstat): create the node early.
      node = newNode(rel, rel.split('/').length, 0);
      dirs.set(rel, node);
    }
    lastNode = node;
    return node;
  };

  const progress = {
    filesTotal: 0,
    filesDone: 0,
    bytesTotal: 0,
    bytesDone: 0,
    filesHashed: 0,
    filesReused: 0,
    trees: 0,
  };
  let lastReport = 0;
  let calls = 0;
  const report = (done: boolean) => {
    if (options.onProgress === undefined) return;
    // The clock is read once per 64 files: a warm run reports 200,000 of them in about a second.
    if (!done && (calls++ & 63) !== 0) return;
    const now = Date.now();
    if (!done && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    options.onProgress({ ...progress, done });
  };

  const limit = pLimit(options.concurrency);
  let failed = false;
  /** Trees stored (encoded) this run, below the root. */
  const putTrees = new Set<string>();

  /** Records a file: `r` is a new record, or the number of its unchanged record in the old index. */
  const record = (e: ScanEntry, slot: number, r: IndexRecord | number) => {
    const parent = nodeOf(e.dir);
    parent.fileNames.push(e.name);
    parent.fileRecords.push(r);
    records[slot] = r;
    if (typeof r === 'number') {
      parent.same++;
      oldSeen++;
    } else {
      parent.changed = true;
    }
    progress.filesDone++;
    progress.bytesDone += e.size;
    report(false);
  };

  /** The unchanged-file path, synchronous when the sink can answer at once (no promise per file). */
  const presence =
    sink.batches?.target === undefined
      ? undefined
      : new ObjectPresence(sink.batches.target.objects, view.stamps);
  /** Whether an object named in the old index is there, synchronously (undefined: the sink cannot tell at once). */
  const hasObject =
    presence === undefined ? sink.hasFileSync : (digest: string) => presence.hasIndexed(digest);
  /** The same for old record `i`, without making its digest string when the folder's stamp holds. */
  const hasObjectOf: ((i: number) => boolean) | undefined =
    presence !== undefined
      ? (i) => presence.trusts(view.fan(i)) || presence.hasIndexed(view.digest(i))
      : hasObject === undefined
        ? undefined
        : (i) => hasObject(view.digest(i));
  const reuse = (e: ScanEntry, slot: number): boolean => {
    if (hasObjectOf === undefined) return false;
    const i = view.find(e.relativePath, e.dir, e.name);
    if (i < 0 || !view.fileMatches(i, e) || !hasObjectOf(i)) return false;
    progress.filesReused++;
    record(e, slot, i);
    return true;
  };
  /** A new file record (the stat is the walk's: if the file moved on while it was read, it is never trusted). */
  const fresh = (e: ScanEntry, digest: string, read: { size: number; mtimeMs: number; ino: number }) => {
    progress.filesHashed++;
    indexChanged = true;
    presence?.noteStored(digest);
    const racy = read.size !== e.size || read.mtimeMs !== e.mtimeMs || read.ino !== e.ino;
    return {
      type: 'file',
      digest,
      mode: e.mode,
      size: e.size,
      mtimeMs: e.mtimeMs,
      ino: e.ino,
      racy,
    } as const;
  };

  const addFile = async (e: FileEntry) => {
    if (failed) return;
    signal?.throwIfAborted();
    const i = view.find(e.relativePath);
    if (i >= 0 && view.fileMatches(i, e) && (await sink.hasFile(view.digest(i)))) {
      progress.filesReused++;
      presence?.noteStored(view.digest(i));
      record(e, e.slot, i);
      return;
    }
    const stored = await sink.putFile(e.path);
    record(e, e.slot, fresh(e, stored.digest, stored));
  };

  const addSymlink = async (e: ScanEntry) => {
    if (failed) return;
    let target: string;
    try {
      target = await readlink(e.path);
    } catch (error) {
      throw fromErrno(error, { path: e.path, family: TreeError, action: 'read symlink' });
    }
    const parent = nodeOf(e.dir);
    parent.changed = true;
    parent.children.push({
      name: e.name,
      digest: '',
      type: 'symlink',
      mode: e.mode & 0o7777,
      target,
    });
  };

  // A failed file stops the walk at once (its error is the abort reason) instead of after the whole tree.
  const stopWalk = new AbortController();
  const walkSignal = signal === undefined ? stopWalk.signal : AbortSignal.any([signal, stopWalk.signal]);
  // Files to read and symlinks to resolve wait in a queue served by at most `concurrency` workers: no promise per
  // entry (a cold write-tree of 200,000 files queued that many in p-limit, ~0.5 GB).
  const queue: (FileEntry | ScanEntry | undefined)[] = [];
  let head = 0;
  const workers = new Set<Promise<void>>();
  let firstError: { readonly reason: unknown } | undefined;
  const work = async () => {
    while (head < queue.length && firstError === undefined) {
      const e = queue[head]!;
      queue[head++] = undefined;
      if (head >= 4096) {
        queue.splice(0, head);
        head = 0;
      }
      try {
        if ('slot' in e) await addFile(e);
        else await addSymlink(e);
      } catch (error) {
        if (firstError === undefined) {
          firstError = { reason: error };
          failed = true;
          stopWalk.abort(error);
        }
      }
    }
  };
  const enqueue = (e: FileEntry | ScanEntry) => {
    queue.push(e);
    if (workers.size < options.concurrency) {
      const worker: Promise<void> = work().then(() => {
        workers.delete(worker);
      });
      workers.add(worker);
    }
  };
  const drain = async () => {
    while (workers.size > 0) await Promise.all([...workers]);
  };

  // Small files go in batches to a BatchRunner: the main thread at first, worker threads once the tree proves big
  // (or from the start when `workers` says so).
  const batchTarget = sink.batches;
  const pendingFiles: FileEntry[] = [];
  let pendingHead = 0;
  let batched = 0;
  let active = 0;
  let scanned = false;
  let runner: BatchRunner = mainThreadRunner();
  let upgrade: Promise<void> | undefined;
  const autoWorkers = defaultWorkers();
  let idle: (() => void) | undefined;
  const fail = (error: unknown) => {
    if (firstError === undefined) {
      firstError = { reason: error };
      failed = true;
      stopWalk.abort(error);
    }
  };
  const onBatch = (entries: readonly FileEntry[], outcomes: readonly StoreOutcome[]) => {
    outcomes.forEach((o, i) => {
      const e = entries[i]!;
      if (o === 'large') enqueue(e);
      else if (isFailure(o)) fail(failureError(o));
      else if (!failed) record(e, e.slot, fresh(e, `blake3:${o.hex}`, o));
    });
  };
  const pump = () => {
    if (signal?.aborted === true) fail(signal.reason);
    const wanted = options.workers ?? (batched > WORKERS_AFTER ? autoWorkers : 0);
    if (wanted > 0 && upgrade === undefined && !failed) {
      upgrade = workerRunner(wanted).then(
        (r) => {
          runner = r;
          pump();
        },
        (error: unknown) => {
          fail(error);
          pump();
        },
      );
    }
    const ready = upgrade === undefined || runner.threaded;
    while (ready && !failed && active < runner.inFlight) {
      const available = pendingFiles.length - pendingHead;
      if (available === 0 || (!scanned && available < runner.batchSize)) break;
      const entries = pendingFiles.slice(pendingHead, pendingHead + runner.batchSize);
      pendingHead += entries.length;
      if (pendingHead >= 4096) {
        pendingFiles.splice(0, pendingHead);
        pendingHead = 0;
      }
      active++;
      runner
        .store(
          batchTarget?.target,
          entries.map((e) => e.path),
        )
        .then(
          (outcomes) => {
            active--;
            onBatch(entries, outcomes);
            pump();
          },
          (error: unknown) => {
            active--;
            fail(error);
            pump();
          },
        );
    }
    if (active === 0 && idle !== undefined && (failed || pendingHead === pendingFiles.length)) idle();
  };
  const batchesDone = async () => {
    scanned = true;
    if (upgrade !== undefined) await upgrade;
    await new Promise<void>((resolveIdle) => {
      idle = resolveIdle;
      pump();
    });
  };

  try {
    const helper = options.workers === undefined ? undefined : options.workers > 0;
    await scanTree(dir, { ignore, concurrency: options.concurrency, signal: walkSignal, helper }, (e) => {
      if (e.type === 'dir') {
        const node = nodeOf(e.relativePath);
        node.mode = e.mode & 0o7777;
        const i = view.find(e.relativePath, e.dir, e.name);
        if (i >= 0 && view.type(i) === 'dir') {
          oldSeen++;
          const old = view.record(i);
          if (old.digest !== '' && old.mode === e.mode) node.old = old;
        }
        node.slot = paths.length;
        paths.push(e.relativePath);
        records.push({
          type: 'dir',
          digest: '',
          mode: e.mode,
          size: 0,
          mtimeMs: e.mtimeMs,
          ino: e.ino,
          racy: false,
        });
      } else if (e.type === 'file') {
        progress.filesTotal++;
        progress.bytesTotal += e.size;
        const slot = paths.length;
        paths.push(e.relativePath);
        records.push(undefined);
        if (reuse(e, slot)) return;
        if (batchTarget === undefined) {
          enqueue({ ...e, slot });
          return;
        }
        pendingFiles.push({ ...e, slot });
        batched++;
        if (pendingFiles.length - pendingHead >= runner.batchSize) pump();
      } else {
        // A copy: the scan reuses its entry object.
        enqueue({ ...e });
      }
    });
    await batchesDone();
    await drain();
  } catch (error) {
    failed = true;
    await batchesDone();
    await drain();
    throw firstError === undefined ? error : firstError.reason;
  } finally {
    if (upgrade !== undefined) await upgrade;
    await runner.close();
  }
  if (firstError !== undefined) throw firstError.reason;

  // Deepest level first, so every child tree's digest is known when its parent is serialised; one level at a time
  // in parallel.
  const levels = new Map<number, DirNode[]>();
  for (const node of dirs.values()) {
    const level = levels.get(node.depth);
    if (level === undefined) levels.set(node.depth, [node]);
    else level.push(node);
  }
  let rootDigest = '';
  const finish = (node: DirNode, digest: string) => {
    if (options.keepTrees !== undefined) options.keepTrees.set(digest, entriesOf(node, view));
    progress.trees++;
    if (node.rel === '') {
      rootDigest = digest;
      return;
    }
    const name = node.rel.slice(node.rel.lastIndexOf('/') + 1);
    const parent = nodeOf(parentOf(node.rel));
    parent.children.push({ name, digest, type: 'dir', mode: node.mode });
    const entries = node.children.length + node.fileNames.length;
    const old = node.old;
    if (old !== undefined && old.digest === digest) parent.same++;
    else parent.changed = true;
    // The folder's record carries its tree digest and entry count, for the next run.
    const seen = records[node.slot];
    if (typeof seen === 'object' && (seen.digest !== digest || seen.size !== entries)) {
      if (old === undefined || old.digest !== digest || old.size !== entries) indexChanged = true;
      records[node.slot] = { ...seen, digest, size: entries };
    }
  };
  for (const depth of [...levels.keys()].sort((a, b) => b - a)) {
    signal?.throwIfAborted();
    const toEncode: DirNode[] = [];
    for (const node of levels.get(depth)!) {
      const old = node.old;
      if (
        reuseTrees &&
        old !== undefined &&
        !node.changed &&
        node.same === old.size &&
        hasObject?.(old.digest) === true
      ) {
        finish(node, old.digest);
      } else {
        toEncode.push(node);
      }
    }
    await Promise.all(
      toEncode.map((node) =>
        limit(async () => {
          const digest = await sink.putTree(encodeTree(entriesOf(node, view)));
          // The root's digest is not kept in the index: its object need not be covered by a stamp.
          if (node.rel !== '') {
            presence?.noteStored(digest);
            putTrees.add(digest);
          }
          finish(node, digest);
        }),
      ),
    );
  }

  // Every object the new index names must count as used now (eviction is by mtime), but an unchanged run must not
  // pay a syscall per object. The index says since when all its objects were last refreshed (`usedAtMs`): once that
  // is `touchAfterMs` old, every one gets the mtime now (one `utimes` each, no `stat`: measured the cheaper of the
  // two) and the time moves on to the run's start; any other run looks only at objects new to the index (files
  // hashed, trees encoded) and those in store folders whose stamp failed (something was added, removed or retimed
  // there), and refreshes the ones older than `usedAtMs`. Objects stored this run are `stat`ed first either way: most
  // were just created (a cold run would otherwise `utimes` every object it wrote).
  let usedAtMs = 0;
  const touchAfterMs = sink.batches?.target?.touchAfterMs;
  if (options.saveIndex && presence !== undefined && touchAfterMs !== undefined) {
    const now = Date.now();
    // File timestamps come from a coarser clock than Date.now(): a margin so that objects created now count.
    const since = startedAt - 1000;
    const previous = presence.usedAtMs;
    const stale = !(now - previous < touchAfterMs);
    const olderThan = stale ? since : previous;
    const changedFans = stale ? undefined : presence.untrustedFans();
    const items = function* (): Iterable<[string, ObjectKind, number | undefined]> {
      // Nothing new and every stamp held (an unchanged run): not even a pass over the records.
      if (!stale && changedFans!.size === 0 && progress.filesHashed === 0 && putTrees.size === 0) return;
      for (let k = 0; k < paths.length; k++) {
        const r = records[k];
        if (r === undefined) continue;
        if (typeof r === 'number') {
          // An unchanged file of the old index.
          if (stale) yield [view.digest(r), 'file', undefined];
          else if (changedFans!.size > 0 && changedFans!.has(view.fan(r) ?? '')) {
            yield [view.digest(r), 'file', previous];
          }
        } else if (r.digest !== '') {
          if (r.type === 'file' || putTrees.has(r.digest)) yield [r.digest, kindOf(r.type), olderThan];
          else if (stale) yield [r.digest, kindOf(r.type), undefined];
          else if (changedFans!.has(r.digest.slice(7, 9))) yield [r.digest, kindOf(r.type), previous];
        }
      }
    };
    const ok = presence.refreshUse(items(), now);
    usedAtMs = !ok ? 0 : stale ? since : previous;
    if (usedAtMs !== previous) indexChanged = true;
  }

  if (options.saveIndex) {
    // Every entry met again unchanged and nothing else: the same keys as the old index.
    const sameKeys = oldSeen === view.count && paths.length === oldSeen;
    const stampsHold = presence === undefined || presence.unchanged();
    if (indexChanged || !sameKeys || !stampsHold) {
      const entries = {
        *[Symbol.iterator](): Iterator<[string, IndexRecord]> {
          for (let k = 0; k < paths.length; k++) {
            const r = records[k];
            if (r !== undefined) yield [paths[k]!, typeof r === 'number' ? view.record(r) : r];
          }
        },
      };
      const stamps = await presence?.stampsFor(digestsOf(entries), usedAtMs);
      await saveIndex(dir, entries, { trees: true, stamps });
    }
  }
  report(true);
  return rootDigest;
}
