import { readdirSync, statSync } from 'node:fs';
import { readlink, stat as statPath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fromErrno, TreeError } from '@fsw/errors';
import pLimit from 'p-limit';
import { encodeTree } from '../codec.js';
import { tryParseDigest } from '../digest.js';
import type { TreeEntry } from '../types.js';
import {
  type BatchRunner,
  defaultWorkers,
  mainThreadRunner,
  WORKERS_AFTER,
  workerRunner,
} from './batch-runner.js';
import { failureError, isFailure, objectFile, type StoreOutcome, type StoreTarget } from './file-jobs.js';
import { readIgnoreText } from './ignore-rules.js';
import { type IndexRecord, loadIndex, recordMatches, saveIndex } from './index-file.js';
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
  readonly children: TreeEntry[];
}

const PROGRESS_EVERY_MS = 100;

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

/** Lookups in one fan-out folder of the store after which the folder is listed once instead of stat-ed per object. */
const LIST_AFTER = 32;

/**
 * Whether objects are in a local store, for digests taken from the index, synchronously: a stat per object at
 * first, then one listing per fan-out folder kept for the rest of the build (an unchanged tree of 200,000 files
 * asks about every object; a small tree in a big store lists nothing).
 */
function objectChecker(target: StoreTarget): (digest: string) => boolean {
  const listings = new Map<string, Set<string>>();
  const lookups = new Map<string, number>();
  return (digest) => {
    // Index digests are ours: `blake3:<hex>`. Anything else is not trusted (and re-read).
    if (digest.length !== 71 || !digest.startsWith('blake3:')) return false;
    const fan = digest.slice(7, 9);
    let names = listings.get(fan);
    if (names === undefined) {
      const n = (lookups.get(fan) ?? 0) + 1;
      lookups.set(fan, n);
      if (n < LIST_AFTER) {
        const hex = tryParseDigest(digest)?.hex;
        return (
          hex !== undefined &&
          (statSync(objectFile(target.objects, hex, 'file'), { throwIfNoEntry: false }) !== undefined ||
            statSync(objectFile(target.objects, hex, 'tree'), { throwIfNoEntry: false }) !== undefined)
        );
      }
      const sub = join(target.objects, fan);
      names = new Set();
      try {
        // Keyed by the hex without the suffix: a lookup then needs no concatenated (flattened) string per file.
        for (const name of readdirSync(sub)) {
          if (name.endsWith('.file') || name.endsWith('.tree')) names.add(name.slice(0, -5));
        }
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') {
          throw fromErrno(error, { path: sub, family: TreeError, action: 'read store directory' });
        }
      }
      listings.set(fan, names);
    }
    // A name listed in the store is hex: a digest with anything else in it matches nothing.
    return names.has(digest.slice(9));
  };
}

/** Builds the Merkle tree of `dir` bottom-up and returns the root digest. */
export async function buildTree(dir: string, options: BuildOptions): Promise<string> {
  const { sink, signal } = options;
  signal?.throwIfAborted();
  let rootStat: import('node:fs').Stats;
  try {
    rootStat = await statPath(dir);
  } catch (error) {
    throw fromErrno(error, { path: dir, family: TreeError, action: 'read directory' });
  }
  if (!rootStat.isDirectory()) throw new TreeError('E_NOT_DIR', `not a directory: ${dir}`, { path: dir });

  const ignoreText = await readIgnoreText(dir, options.ignoreFile);
  const ignore = ignoreText === undefined ? [] : ignoreText.split(/\r?\n/);
  if (options.exclude !== undefined) {
    const rel = relative(resolve(dir), resolve(options.exclude));
    // Anchored (leading `/`), ending in `/` (no trailing-space rule), with the glob characters escaped.
    if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) {
      ignore.push(
        `/${rel
          .split(sep)
          .join('/')
          .replace(/[\\*?[]/g, (c) => `\\${c}`)}/`,
      );
    }
  }
  const oldIndex = options.useIndex ? await loadIndex(dir) : new Map<string, IndexRecord>();
  const newIndex = new Map<string, IndexRecord>();
  let indexChanged = !options.useIndex;

  const dirs = new Map<string, DirNode>();
  dirs.set('', { rel: '', depth: 0, mode: rootStat.mode & 0o7777, children: [] });
  const nodeOf = (rel: string): DirNode => {
    let node = dirs.get(rel);
    if (node === undefined) {
      // A child may be reported before its parent's own entry (parallel lstat): create the node early.
      node = { rel, depth: rel.split('/').length, mode: 0, children: [] };
      dirs.set(rel, node);
    }
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
  const report = (done: boolean) => {
    if (options.onProgress === undefined) return;
    const now = Date.now();
    if (!done && now - lastReport < PROGRESS_EVERY_MS) return;
    lastReport = now;
    options.onProgress({ ...progress, done });
  };

  const limit = pLimit(options.concurrency);
  let failed = false;

  const record = (e: ScanEntry, digest: string, racy: boolean, same?: IndexRecord) => {
    nodeOf(parentOf(e.relativePath)).children.push({
      name: e.name,
      digest,
      type: 'file',
      mode: e.mode & 0o7777,
    });
    // An unchanged file keeps its record object: no allocation on the warm path.
    newIndex.set(
      e.relativePath,
      same ?? {
        type: 'file',
        digest,
        mode: e.mode,
        size: e.size,
        mtimeMs: e.mtimeMs,
        ino: e.ino,
        racy,
      },
    );
    progress.filesDone++;
    progress.bytesDone += e.size;
    report(false);
  };

  /** The unchanged-file path, synchronous when the sink can answer at once (no promise per file). */
  const hasObject =
    sink.batches?.target === undefined ? sink.hasFileSync : objectChecker(sink.batches.target);
  const reuse = (e: ScanEntry): boolean => {
    const previous = oldIndex.get(e.relativePath);
    if (!recordMatches(previous, e) || hasObject === undefined || !hasObject(previous.digest)) {
      return false;
    }
    progress.filesReused++;
    record(e, previous.digest, false, previous);
    return true;
  };

  const addFile = async (e: ScanEntry) => {
    if (failed) return;
    signal?.throwIfAborted();
    const previous = oldIndex.get(e.relativePath);
    if (recordMatches(previous, e) && (await sink.hasFile(previous.digest))) {
      progress.filesReused++;
      record(e, previous.digest, false);
      return;
    }
    const stored = await sink.putFile(e.path);
    progress.filesHashed++;
    indexChanged = true;
    // The index keeps the walk's stat: if the file moved on between the walk and the read, never trust that record.
    record(e, stored.digest, stored.size !== e.size || stored.mtimeMs !== e.mtimeMs || stored.ino !== e.ino);
  };

  const addSymlink = async (e: ScanEntry) => {
    if (failed) return;
    let target: string;
    try {
      target = await readlink(e.path);
    } catch (error) {
      throw fromErrno(error, { path: e.path, family: TreeError, action: 'read symlink' });
    }
    nodeOf(parentOf(e.relativePath)).children.push({
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
  const queue: (ScanEntry | undefined)[] = [];
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
        if (e.type === 'file') await addFile(e);
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
  const enqueue = (e: ScanEntry) => {
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
  const pendingFiles: ScanEntry[] = [];
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
  const onBatch = (entries: readonly ScanEntry[], outcomes: readonly StoreOutcome[]) => {
    outcomes.forEach((o, i) => {
      const e = entries[i]!;
      if (o === 'large') enqueue(e);
      else if (isFailure(o)) fail(failureError(o));
      else if (!failed) {
        progress.filesHashed++;
        indexChanged = true;
        record(e, `blake3:${o.hex}`, o.size !== e.size || o.mtimeMs !== e.mtimeMs || o.ino !== e.ino);
      }
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
    await scanTree(dir, { ignore, concurrency: options.concurrency, signal: walkSignal }, (e) => {
      if (e.type === 'dir') {
        nodeOf(e.relativePath).mode = e.mode & 0o7777;
        newIndex.set(e.relativePath, {
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
        if (reuse(e)) return;
        if (batchTarget === undefined) {
          enqueue(e);
          return;
        }
        pendingFiles.push(e);
        batched++;
        if (pendingFiles.length - pendingHead >= runner.batchSize) pump();
      } else {
        enqueue(e);
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
  for (const depth of [...levels.keys()].sort((a, b) => b - a)) {
    signal?.throwIfAborted();
    await Promise.all(
      levels.get(depth)!.map((node) =>
        limit(async () => {
          const bytes = encodeTree(node.children);
          const digest = await sink.putTree(bytes);
          options.keepTrees?.set(digest, node.children);
          progress.trees++;
          if (node.rel === '') {
            rootDigest = digest;
          } else {
            const name = node.rel.slice(node.rel.lastIndexOf('/') + 1);
            nodeOf(parentOf(node.rel)).children.push({ name, digest, type: 'dir', mode: node.mode });
          }
        }),
      ),
    );
  }

  if (options.saveIndex) {
    if (!indexChanged && newIndex.size === oldIndex.size) {
      for (const key of newIndex.keys()) {
        if (!oldIndex.has(key)) {
          indexChanged = true;
          break;
        }
      }
    } else {
      indexChanged = true;
    }
    if (indexChanged) await saveIndex(dir, newIndex);
  }
  report(true);
  return rootDigest;
}
