import { chmodSync, constants, type Dirent, mkdirSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import {
  chmod,
  copyFile,
  lstat,
  open,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
  unlink,
} from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { fromErrno, TreeError } from '@fsw/errors';
import { hashFile } from '@fsw/hash';
import pLimit from 'p-limit';
import { parseDigest, splitDigest } from './digest.js';
import { runnerFor } from './internal/batch-runner.js';
import { defaultConcurrency } from './internal/build.js';
import {
  CHECKOUT_TEMP_PREFIX,
  type FileFacts,
  failureError,
  isCheckoutTemp,
  isFailure,
  tempName,
} from './internal/file-jobs.js';
import {
  folderRule,
  type IgnoreMatcher,
  INDEX_DIR,
  matcherFromText,
  pathBelow,
  readIgnoreText,
} from './internal/ignore-rules.js';
import {
  type IndexRecord,
  IndexView,
  indexFolderState,
  indexPath,
  loadIndexView,
  saveIndex,
} from './internal/index-file.js';
import { StatQueue } from './internal/stat-queue.js';
import { STAT_FAILED, STAT_GONE } from './internal/stat-slice.js';
import { loadAllTrees } from './read-tree.js';
import { type LocalStore, openStore } from './store.js';
import type { Store, TreeEntry } from './types.js';

/** Progress of a checkout, reported (throttled) while files are written and once at the end. */
export interface CheckoutProgress {
  readonly filesTotal: number;
  readonly filesDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  /** True on the last call. */
  readonly done: boolean;
}

/** What a checkout changed. */
export interface CheckoutResult {
  /** Files (re)written from the store. */
  readonly filesWritten: number;
  /** Files already equal (by the index, or by hashing in a folder fsw did not write), left untouched. */
  readonly filesUnchanged: number;
  readonly symlinksWritten: number;
  readonly dirsCreated: number;
  /** Paths removed because the tree does not have them (a removed folder counts once). */
  readonly removed: number;
}

/** Options of {@link checkout}. */
export interface CheckoutOptions {
  /** The store holding the tree and its objects. @default openStore() */
  readonly store?: Store;
  /**
   * The gitignore-syntax file whose matches are left alone: the tree's own copy when it has one, else the one in
   * `dir`. `''` for none.
   * @default '.fstreeignore'
   */
  readonly ignoreFile?: string;
  /** Use `<dir>/.fstree/index` to skip files already equal, and update it afterwards. @default true */
  readonly index?: boolean;
  /**
   * Replace or modify non-empty folders that fsw did not write (not in the index): without it, such a change fails
   * with `E_NOT_EMPTY` before anything is written.
   * @default false
   */
  readonly force?: boolean;
  /** Files written at once (large files, or a store other than a local one). @default max(8, 2 × CPU count) */
  readonly concurrency?: number;
  /**
   * Worker threads writing small files from a local store, with blocking calls in batches; `0` writes them on the
   * main thread (in short batches between turns of the event loop). Also: past 8,192 files already on disk (2+
   * CPUs), one thread `lstat`s them while the folder is listed; `0` never starts it, any other number from the start.
   * @default 0 for up to 2,000 files, else one per CPU (at most 4)
   */
  readonly workers?: number;
  readonly onProgress?: (progress: CheckoutProgress) => void;
  readonly signal?: AbortSignal;
}

interface FileJob {
  readonly abs: string;
  readonly dirAbs: string;
  readonly rel: string;
  readonly entry: TreeEntry;
}

/** A path as given to the file system: bytes once a name on the way is not valid UTF-8. */
type FsPath = string | Buffer;

interface Removal {
  readonly abs: FsPath;
  readonly rel: string;
  /** `file`: unlink; `tree`: remove the whole folder; `prune`: remove what is not ignored, keep the rest. */
  readonly how: 'file' | 'tree' | 'prune';
}

interface DirPlan {
  readonly abs: string;
  readonly rel: string;
  /** Permission bits from the tree; `undefined` for the root, whose mode no tree records. */
  readonly mode: number | undefined;
  readonly create: boolean;
  readonly removals: Removal[];
  readonly files: FileJob[];
  readonly links: { abs: string; rel: string; target: string; mode: number }[];
  /** Symlinks already pointing where the tree says (recorded in the index as they are). */
  readonly linksKept: { rel: string; mode: number }[];
  readonly dirs: DirPlan[];
  /** Files left as they are, with the stat they were found with (for the index). */
  readonly unchanged: PendingFile[];
  /** The tree's entries, in order: the index is saved in the order the next plan looks its records up. */
  readonly entries: readonly TreeEntry[];
}

const PROGRESS_EVERY_MS = 100;
// setuid/setgid from an untrusted tree could hand out privileges: never applied.
const FILE_MODE_MASK = 0o1777;

/** The path of the first file of the plan to be written from object `digest`. */
function fileRel(plan: DirPlan, digest: string): string | undefined {
  for (const f of plan.files) if (f.entry.digest === digest) return f.rel;
  for (const d of plan.dirs) {
    const rel = fileRel(d, digest);
    if (rel !== undefined) return rel;
  }
  return undefined;
}

function isLocalStore(store: Store): store is LocalStore {
  return typeof (store as Partial<LocalStore>).locate === 'function';
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function tempPath(dirAbs: string): string {
  return join(dirAbs, tempName(CHECKOUT_TEMP_PREFIX));
}

function io(error: unknown, path: string, action: string): TreeError {
  return TreeError.is(error) ? error : fromErrno(error, { path, family: TreeError, action });
}

/**
 * Makes `dir` equal to the tree `digest`: creates and updates files (modes too), folders and symlinks, and removes
 * what the tree does not have, leaving ignored paths and the `.fstree` index folder alone. Files already equal are
 * skipped (by the index). Every tree object is read and validated, and every object checked present, before
 * anything is written.
 *
 * Safety: nothing is written outside `dir`; nothing is written through a symlink (one in the way is replaced, never
 * followed); every file is written to a temp file beside it and renamed into place, so a failure leaves no
 * half-written file; a non-empty folder that fsw did not write (not in the index) is not replaced, pruned or
 * modified without `force`; setuid/setgid bits are not applied.
 *
 * @throws TreeError E_MISSING_OBJECT when the store lacks an object, E_CORRUPT for an invalid tree object,
 *   E_NOT_EMPTY for a folder that would need `force`, E_NOT_DIR when `dir` is not a folder,
 *   E_INVALID_ARGUMENT for a tree with a `.fstree` entry at its root; `signal.reason` when aborted
 */
export async function checkout(
  digest: string,
  dir: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResult> {
  const store = options.store ?? openStore();
  const signal = options.signal;
  const force = options.force === true;
  const useIndex = options.index !== false;
  const ignoreFile = options.ignoreFile ?? '.fstreeignore';
  const root = resolve(dir);
  const rootDigest = parseDigest(digest);

  // 1. Read and validate every tree.
  const trees = await loadAllTrees(rootDigest, store, signal);
  const rootEntries = trees.get(rootDigest)!;
  if (rootEntries.some((e) => e.name === INDEX_DIR)) {
    throw new TreeError(
      'E_INVALID_ARGUMENT',
      `tree ${rootDigest} has a '${INDEX_DIR}' entry at its root, a name checkout keeps for its index`,
    );
  }

  // 2. Look at the folder as it is: plan every change, and refuse before writing anything.
  let rootExists = false;
  try {
    const st = await stat(root);
    if (!st.isDirectory()) throw new TreeError('E_NOT_DIR', `not a directory: ${root}`, { path: root });
    rootExists = true;
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw io(error, root, 'check out into');
  }
  const ignoreEntry = rootEntries.find((e) => e.name === ignoreFile && e.type === 'file');
  const ignoreText =
    ignoreFile === ''
      ? undefined
      : ignoreEntry !== undefined
        ? Buffer.from(await store.get(ignoreEntry.digest)).toString('utf8')
        : rootExists
          ? await readIgnoreText(root, ignoreFile)
          : undefined;
  // As for writeTree: a store kept inside the folder is no part of it (never removed, never counted as untracked).
  const storeRel = pathBelow(root, store.dir);
  const ignored = matcherFromText(
    storeRel === undefined
      ? ignoreText
      : ignoreText === undefined
        ? folderRule(storeRel)
        : `${ignoreText}\n${folderRule(storeRel)}`,
  );
  // Only an index in a real `.fstree` folder, as the index is read: one reached through a symlink says nothing of
  // who wrote `dir` (taken as ours, `dir` would be pruned without force).
  const indexExists =
    rootExists &&
    useIndex &&
    (await indexFolderState(root)) === 'dir' &&
    (await lstat(indexPath(root)).catch(() => undefined))?.isFile() === true;
  // Read in place (no object per record): on a folder already checked out, every path is looked up once.
  const oldIndex = useIndex && rootExists ? await loadIndexView(root) : IndexView.empty();
  const conflicts: string[] = [];
  const ctx: PlanContext = {
    trees,
    index: oldIndex,
    ignored,
    force,
    conflicts,
    hashLimit: pLimit(options.concurrency ?? defaultConcurrency()),
    comparisons: [],
    stats: new StatQueue(options.workers === undefined ? undefined : options.workers > 0),
    pending: [],
    signal,
    indexExists,
    storeRel,
    matched: 0,
    dirsSinceYield: 0,
  };
  let plan: DirPlan;
  try {
    plan = await planDir(ctx, root, '', rootEntries, rootExists, undefined);
    await ctx.stats.finish(signal);
  } finally {
    await ctx.stats.close();
  }
  for (let i = 0; i < ctx.pending.length; i++) {
    if (i % 4096 === 4095) signal?.throwIfAborted();
    decideFile(ctx, ctx.pending[i]!);
  }
  await Promise.all(ctx.comparisons);
  if (conflicts.length > 0) {
    const more = conflicts.length > 1 ? ` (and ${conflicts.length - 1} more)` : '';
    throw new TreeError(
      'E_NOT_EMPTY',
      `refusing to check out into ${root}: ${conflicts[0]}${more}. Use force to overwrite`,
      { path: root },
    );
  }

  // Every object to be written must be in the store before anything is written. Files already equal need none:
  // checking (and touching) the objects of a whole unchanged tree cost a stat per file.
  const sources = new Map<string, string>();
  const sizes = new Map<string, number>();
  const modes = new Map<string, number>();
  const fileDigests = new Set<string>();
  const collect = (p: DirPlan): void => {
    for (const f of p.files) fileDigests.add(f.entry.digest);
    for (const d of p.dirs) collect(d);
  };
  collect(plan);
  // The file's path is looked for only on failure: the check itself keeps digests only.
  const missingObject = (d: string) => {
    const rel = fileRel(plan, d);
    return new TreeError(
      'E_MISSING_OBJECT',
      `object ${d}${rel === undefined ? '' : ` (${rel})`} of tree ${rootDigest} is not in the store ${store.dir}`,
      { path: store.dir },
    );
  };
  if (isLocalStore(store)) {
    // One synchronous stat per object: no promise per file (hundreds of thousands of them cost more than the stats).
    let n = 0;
    for (const d of fileDigests) {
      if (++n % 1024 === 0) signal?.throwIfAborted();
      const found = store.locateSync(d);
      if (found === undefined) throw missingObject(d);
      sources.set(d, found.path);
      sizes.set(d, found.size);
      modes.set(d, found.mode);
    }
    signal?.throwIfAborted();
  } else {
    const checkLimit = pLimit(32);
    await Promise.all(
      [...fileDigests].map((d) =>
        checkLimit(async () => {
          signal?.throwIfAborted();
          if (!(await store.has(d))) throw missingObject(d);
        }),
      ),
    );
  }

  // 3. Apply the plan: folders, removals and symlinks first (top-down), then files in parallel, then folder modes.
  const counts = { filesWritten: 0, filesUnchanged: 0, symlinksWritten: 0, dirsCreated: 0, removed: 0 };
  const fileJobs: FileJob[] = [];
  const allDirs: DirPlan[] = [];
  const unchanged: DirPlan['unchanged'] = [];
  const links: DirPlan['links'] = [];
  const linksKept: DirPlan['linksKept'] = [];
  const written: Written[] = [];
  let dirsSinceYield = 0;
  const applyDir = async (p: DirPlan): Promise<void> => {
    signal?.throwIfAborted();
    if (p.create) {
      try {
        // Blocking calls for folders too (no thread-pool round trip each), yielding every few folders.
        mkdirSync(p.abs, p.rel === '' ? { recursive: true } : { mode: 0o700 });
        if (++dirsSinceYield >= 64) {
          dirsSinceYield = 0;
          await new Promise((resolveTurn) => setImmediate(resolveTurn));
        }
      } catch (error) {
        throw io(error, p.abs, 'create directory');
      }
      counts.dirsCreated++;
    } else if (p.mode !== undefined && (p.mode & 0o200) === 0) {
      // A read-only folder from an earlier checkout: open it for writing; its mode is restored at the end.
      try {
        await chmod(p.abs, p.mode | 0o700);
      } catch (error) {
        throw io(error, p.abs, 'change mode of');
      }
    }
    allDirs.push(p);
    for (const r of p.removals) {
      await removePath(r, ignored);
      counts.removed++;
    }
    for (const l of p.links) {
      const temp = tempPath(p.abs);
      try {
        await symlink(l.target, temp);
        await rename(temp, l.abs);
      } catch (error) {
        await unlink(temp).catch(() => {});
        throw io(error, l.abs, 'create symlink');
      }
      counts.symlinksWritten++;
      links.push(l);
    }
    linksKept.push(...p.linksKept);
    fileJobs.push(...p.files);
    for (const u of p.unchanged) {
      if (u.chmod) {
        try {
          await chmod(u.abs, u.entry.mode & FILE_MODE_MASK);
        } catch (error) {
          throw io(error, u.abs, 'change mode of');
        }
      }
      unchanged.push(u);
    }
    for (const d of p.dirs) await applyDir(d);
  };
  let completed = false;
  try {
    await applyDir(plan);

    const progress = { filesTotal: fileJobs.length, filesDone: 0, bytesTotal: 0, bytesDone: 0 };
    for (const job of fileJobs) progress.bytesTotal += sizes.get(job.entry.digest) ?? 0;
    let lastReport = 0;
    const report = (done: boolean) => {
      if (options.onProgress === undefined) return;
      const now = Date.now();
      if (!done && now - lastReport < PROGRESS_EVERY_MS) return;
      lastReport = now;
      options.onProgress({ ...progress, done });
    };
    const local = isLocalStore(store) && !store.verify;
    const small: FileJob[] = [];
    const other: FileJob[] = [];
    for (const job of fileJobs) {
      const size = sizes.get(job.entry.digest);
      if (local && size !== undefined && size < FAST_COPY_MAX) small.push(job);
      else other.push(job);
    }
    let failure: { readonly reason: unknown } | undefined;
    const done = (job: FileJob, st: FileFacts) => {
      written.push({ rel: job.rel, entry: job.entry, stat: st });
      counts.filesWritten++;
      progress.filesDone++;
      progress.bytesDone += st.size;
    };
    if (small.length > 0) {
      // Small files: batches of blocking calls (worker threads for many files), no thread-pool round trip per call.
      const runner = await runnerFor(small.length, options.workers);
      try {
        let next = 0;
        let active = 0;
        await new Promise<void>((resolveAll) => {
          const pump = () => {
            while (
              failure === undefined &&
              signal?.aborted !== true &&
              active < runner.inFlight &&
              next < small.length
            ) {
              const batch = small.slice(next, next + runner.batchSize);
              next += batch.length;
              active++;
              const jobs = batch.map((job) => ({
                source: sources.get(job.entry.digest)!,
                temp: tempPath(job.dirAbs),
                final: job.abs,
                mode: job.entry.mode & FILE_MODE_MASK,
              }));
              runner.checkout(jobs).then(
                (results) => {
                  active--;
                  results.forEach((r, i) => {
                    if (isFailure(r)) failure ??= { reason: failureError(r) };
                    else done(batch[i]!, r);
                  });
                  report(false);
                  pump();
                },
                (error: unknown) => {
                  active--;
                  failure ??= { reason: error };
                  pump();
                },
              );
            }
            if (active === 0) resolveAll();
          };
          pump();
        });
      } finally {
        await runner.close();
      }
      if (failure !== undefined) throw failure.reason;
      signal?.throwIfAborted();
    }
    // Other files: a fixed set of async workers taking the next job (memory stays flat).
    let next = 0;
    const worker = async () => {
      while (failure === undefined && next < other.length) {
        const job = other[next++]!;
        try {
          signal?.throwIfAborted();
          done(job, await writeFile(store, sources.get(job.entry.digest), modes.get(job.entry.digest), job));
          report(false);
        } catch (error) {
          failure ??= { reason: error };
        }
      }
    };
    const workers = Math.max(1, Math.min(options.concurrency ?? defaultConcurrency(), other.length));
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure !== undefined) throw failure.reason;

    // Deepest first, so that a read-only folder is closed only after everything inside it is written.
    for (const p of allDirs.sort((a, b) => b.rel.split('/').length - a.rel.split('/').length)) {
      if (p.mode === undefined) continue;
      if (++dirsSinceYield >= 256) {
        dirsSinceYield = 0;
        await new Promise((resolveTurn) => setImmediate(resolveTurn));
      }
      try {
        chmodSync(p.abs, p.mode);
      } catch (error) {
        throw io(error, p.abs, 'change mode of');
      }
    }
    counts.filesUnchanged = unchanged.length;
    report(true);
    completed = true;
  } finally {
    // Also after a failure or an abort: what was written is fsw's own work, so that running the checkout again
    // is not refused as if those folders were someone else's. (Never when the root itself was not reached.)
    // A checkout that changed nothing, over an index that already says exactly what it would say (every record
    // matched, none more) in the order it was read, leaves the index file as it is.
    const records = allDirs.length - 1 + links.length + linksKept.length + unchanged.length + written.length;
    const untouched =
      completed &&
      oldIndex.inOrder &&
      counts.filesWritten + counts.symlinksWritten + counts.dirsCreated + counts.removed === 0 &&
      !unchanged.some((u) => u.chmod) &&
      ctx.matched === records &&
      oldIndex.count === records;
    if (useIndex && !untouched && allDirs.some((p) => p.rel === '')) {
      const save = writeCheckoutIndex(root, oldIndex, completed, plan, {
        dirs: allDirs,
        links,
        linksKept,
        unchanged,
        written,
        factsOf: (i) => {
          const facts = { mode: 0, size: 0, mtimeMs: 0, ino: 0 };
          ctx.stats.read(i, facts);
          return facts;
        },
      });
      if (completed) await save;
      else {
        // The failure that got us here is the error to report, not a second one from the index.
        await save.catch(() => {});
      }
    }
  }
  return counts;
}

interface Written {
  readonly rel: string;
  readonly entry: TreeEntry;
  readonly stat: FileFacts;
}

/** What a checkout did, for its index. */
interface Done {
  readonly dirs: readonly DirPlan[];
  readonly links: DirPlan['links'];
  readonly linksKept: DirPlan['linksKept'];
  readonly unchanged: DirPlan['unchanged'];
  /** The facts a kept file was stat-ed with. */
  readonly factsOf: (stat: number) => FileFacts;
  readonly written: readonly Written[];
}

/**
 * Records what the checkout wrote or found equal. After a complete checkout the index describes exactly the tree,
 * its records in the order the next checkout's plan looks them up (so that they are found by the index's cursor);
 * after a failure, the new records are laid over the old ones (paths not reached keep theirs).
 */
async function writeCheckoutIndex(
  root: string,
  oldIndex: IndexView,
  completed: boolean,
  plan: DirPlan,
  done: Done,
): Promise<void> {
  const records = new Map<string, IndexRecord>();
  if (!completed) for (let i = 0; i < oldIndex.count; i++) records.set(oldIndex.path(i), oldIndex.record(i));
  const fileRecord = (s: FileFacts, d: string): IndexRecord => ({
    type: 'file',
    digest: d,
    mode: s.mode,
    size: s.size,
    mtimeMs: s.mtimeMs,
    ino: s.ino,
    racy: false,
  });
  const plain = (type: 'dir' | 'symlink', mode: number): IndexRecord => ({
    type,
    digest: '',
    mode,
    size: 0,
    mtimeMs: 0,
    ino: 0,
    racy: false,
  });
  for (const p of done.dirs) if (p.rel !== '') records.set(p.rel, plain('dir', p.mode ?? 0));
  for (const l of done.links) records.set(l.rel, plain('symlink', l.mode));
  for (const l of done.linksKept) records.set(l.rel, plain('symlink', l.mode));
  for (const u of done.unchanged) {
    const s = u.chmod ? await lstat(u.abs).catch(() => undefined) : done.factsOf(u.stat);
    if (s !== undefined) records.set(u.rel, fileRecord(s, u.entry.digest));
  }
  for (const w of done.written) records.set(w.rel, fileRecord(w.stat, w.entry.digest));
  if (!completed) {
    await saveIndex(root, records);
    return;
  }
  const ordered: [string, IndexRecord][] = [];
  const visit = (p: DirPlan): void => {
    const own = p.rel === '' ? undefined : records.get(p.rel);
    if (own !== undefined) ordered.push([p.rel, own]);
    for (const e of p.entries) {
      if (e.type === 'dir') continue;
      const rel = p.rel === '' ? e.name : `${p.rel}/${e.name}`;
      const r = records.get(rel);
      if (r !== undefined) ordered.push([rel, r]);
    }
    for (const d of p.dirs) visit(d);
  };
  visit(plan);
  await saveIndex(root, ordered);
}

interface PlanContext {
  readonly trees: ReadonlyMap<string, TreeEntry[]>;
  readonly index: IndexView;
  readonly ignored: IgnoreMatcher;
  readonly force: boolean;
  readonly conflicts: string[];
  /** Limits the content comparisons (hashing) of files in folders fsw did not write. */
  readonly hashLimit: ReturnType<typeof pLimit>;
  /** Those comparisons, awaited once the whole folder is planned. */
  readonly comparisons: Promise<void>[];
  /** Files found where the tree has files, to `lstat` (partly on a helper thread) before deciding. */
  readonly stats: StatQueue;
  readonly pending: PendingFile[];
  readonly signal: AbortSignal | undefined;
  readonly indexExists: boolean;
  /** Where the store is, when it is inside `dir` (relative, `/`-separated). */
  readonly storeRel: string | undefined;
  /** Paths whose index record already says what this checkout would record (see `untouched` in checkout). */
  matched: number;
  dirsSinceYield: number;
}

function kindOf(d: Dirent<string | Buffer> | Stats): 'file' | 'dir' | 'symlink' | 'other' {
  if (d.isFile()) return 'file';
  if (d.isDirectory()) return 'dir';
  if (d.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** The index record of `rel` if it is of `type`, else -1. */
function recordOf(
  ctx: PlanContext,
  rel: string,
  type: IndexRecord['type'],
  dir?: string,
  name?: string,
): number {
  const i = ctx.index.find(rel, dir, name);
  return i >= 0 && ctx.index.type(i) === type ? i : -1;
}

/** Whether fsw wrote this folder: the root when it has an index, any other folder when the index lists it. */
function isOurs(ctx: PlanContext, rel: string): boolean {
  return ctx.force || (rel === '' ? ctx.indexExists : recordOf(ctx, rel, 'dir') >= 0);
}

/** Why a conflict in a folder fsw did not write is one. */
const NOT_OURS = '; fsw did not write it (no index entry)';

/**
 * Before a folder fsw wrote is removed (pruned: dropped from the tree; or replaced by a file or symlink), finds what
 * the removal would take with it that fsw did not write: a non-empty folder below it that the index does not list,
 * and, when it is replaced, ignored paths (a pruned folder keeps them; a file cannot be written where they are).
 * Each becomes a conflict (never called with `force`).
 */
function checkRemoval(ctx: PlanContext, abs: FsPath, rel: string, replacedBy: string | undefined): void {
  for (const d of listDir(abs)) {
    const r = `${rel}/${d.name}`;
    const childAbs = childPath(abs, d);
    const isDir = d.kind === 'dir';
    if (ctx.ignored(r, isDir)) {
      if (replacedBy !== undefined) {
        ctx.conflicts.push(
          `${shown(childAbs)} is ignored, but the tree replaces the folder holding it by a ${replacedBy}: it cannot be kept (force deletes it)`,
        );
      }
      continue;
    }
    if (!isDir) continue;
    if (d.raw === undefined && recordOf(ctx, r, 'dir') >= 0) checkRemoval(ctx, childAbs, r, replacedBy);
    else if (isNonEmpty(childAbs)) {
      ctx.conflicts.push(
        `folder ${shown(childAbs)} would be removed with ${shown(abs)} and is not empty${NOT_OURS}`,
      );
    }
  }
}

/** A name found in a folder; `raw` holds its bytes when they are not valid UTF-8 (`name` is then lossy). */
interface Listed {
  readonly name: string;
  readonly kind: 'file' | 'dir' | 'symlink' | 'other';
  readonly raw?: Buffer;
}

/**
 * Lists a folder. Names are decoded as UTF-8 (the fast path); a name that is not valid UTF-8 decodes lossily (with
 * U+FFFD) and could be neither opened nor removed by that string, so a listing with one is read again as bytes.
 */
function listDir(abs: FsPath): Listed[] {
  let dirents: Dirent[];
  try {
    dirents = readdirSync(abs, { withFileTypes: true });
  } catch (error) {
    throw io(error, shown(abs), 'read directory');
  }
  const listed: Listed[] = [];
  let lossy = false;
  for (const d of dirents) {
    if (d.name.includes('\uFFFD')) lossy = true;
    listed.push({ name: d.name, kind: kindOf(d) });
  }
  return lossy ? listBytes(abs) : listed;
}

function listBytes(abs: FsPath): Listed[] {
  let dirents: Dirent<Buffer>[];
  try {
    dirents = readdirSync(abs, { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    throw io(error, shown(abs), 'read directory');
  }
  return dirents.map((d) => {
    const bytes = d.name;
    const name = bytes.toString('utf8');
    return Buffer.byteLength(name) === bytes.length && Buffer.from(name).equals(bytes)
      ? { name, kind: kindOf(d) }
      : { name, kind: kindOf(d), raw: bytes };
  });
}

const SEP = Buffer.from(sep);

/** The path of a listed name in `parent`, as bytes when either is not valid UTF-8. */
function childPath(parent: FsPath, d: Listed): FsPath {
  if (typeof parent === 'string' && d.raw === undefined) return join(parent, d.name);
  const p = typeof parent === 'string' ? Buffer.from(parent) : parent;
  return Buffer.concat([p, SEP, d.raw ?? Buffer.from(d.name)]);
}

/** A path for messages (lossy when not valid UTF-8). */
function shown(path: FsPath): string {
  return typeof path === 'string' ? path : path.toString('utf8');
}

function isNonEmpty(abs: FsPath): boolean {
  try {
    return readdirSync(abs).length > 0;
  } catch (error) {
    throw io(error, shown(abs), 'read directory');
  }
}

/**
 * Plans one folder, then its subfolders, depth-first in tree order. Listing and `lstat` are blocking calls (one
 * promise per file cost several times the system calls themselves on large trees), with a turn of the event loop
 * every few folders; only content comparisons in folders fsw did not write are asynchronous ({@link sameContent}).
 */
async function planDir(
  ctx: PlanContext,
  abs: string,
  rel: string,
  entries: readonly TreeEntry[],
  exists: boolean,
  mode: number | undefined,
): Promise<DirPlan> {
  ctx.signal?.throwIfAborted();
  if (++ctx.dirsSinceYield >= 64) {
    ctx.dirsSinceYield = 0;
    await new Promise((resolveTurn) => setImmediate(resolveTurn));
    ctx.signal?.throwIfAborted();
  }
  const plan: DirPlan = {
    abs,
    rel,
    mode,
    create: !exists,
    removals: [],
    files: [],
    links: [],
    linksKept: [],
    dirs: [],
    unchanged: [],
    entries,
  };
  const onDisk = new Map<string, 'file' | 'dir' | 'symlink' | 'other'>();
  /** Names that are not valid UTF-8: never in a tree, so never kept (several may decode to the same string). */
  const invalid: Listed[] = [];
  if (exists) {
    for (const d of listDir(abs)) {
      if (d.raw === undefined) onDisk.set(d.name, d.kind);
      else invalid.push(d);
    }
  }
  // The folder's own record is looked up first, then its entries in order: the order the index is saved in.
  const ownRecord = rel === '' || !exists ? -1 : recordOf(ctx, rel, 'dir');
  if (ownRecord >= 0) ctx.matched++;
  const ours = ctx.force || (rel === '' ? ctx.indexExists : ownRecord >= 0);
  const childRel = (name: string) => (rel === '' ? name : `${rel}/${name}`);
  // `join` without its normalising: `abs` is resolved and names are validated (no separator, `.` or `..`).
  const prefix = abs.endsWith(sep) ? abs : abs + sep;
  const inTree = new Set(entries.map((e) => e.name));

  // What the tree does not have goes, unless ignored (or the index folder).
  const drop = (d: Listed) => {
    const r = childRel(d.name);
    if (ctx.ignored(r, d.kind === 'dir')) return;
    const childAbs = childPath(abs, d);
    if (d.kind === 'dir') {
      if (d.raw !== undefined || !isOurs(ctx, r)) {
        if (!ctx.force && isNonEmpty(childAbs)) {
          ctx.conflicts.push(`folder ${shown(childAbs)} is not in the tree and not empty${NOT_OURS}`);
          return;
        }
      } else if (!ctx.force) checkRemoval(ctx, childAbs, r, undefined);
      plan.removals.push({ abs: childAbs, rel: r, how: 'prune' });
    } else {
      // A temp file of an earlier checkout cut short is fsw's own wherever it is.
      if (!ours && !(d.raw === undefined && isCheckoutTemp(d.name))) {
        ctx.conflicts.push(`${shown(childAbs)} is not in the tree${NOT_OURS}`);
        return;
      }
      plan.removals.push({ abs: childAbs, rel: r, how: 'file' });
    }
  };
  for (const [name, kind] of onDisk) {
    if (inTree.has(name) || (rel === '' && name === INDEX_DIR)) continue;
    drop({ name, kind });
  }
  for (const d of invalid) drop(d);

  const subdirs: { abs: string; rel: string; entry: TreeEntry; exists: boolean }[] = [];
  for (const entry of entries) {
    const name = entry.name;
    const r = childRel(name);
    const childAbs = prefix + name;
    const existing = onDisk.get(name);
    if (
      ctx.storeRel !== undefined &&
      (r === ctx.storeRel || (ctx.storeRel.startsWith(`${r}/`) && entry.type !== 'dir'))
    ) {
      // Not even with force: the objects being checked out are read from there.
      throw new TreeError(
        'E_INVALID_ARGUMENT',
        `refusing to check out: the tree has a ${entry.type} at ${childAbs}, in the way of the store (${ctx.storeRel}) inside the folder`,
        { path: childAbs },
      );
    }
    // A folder in the way of a file or symlink is replaced only when fsw wrote it (or it is empty, or force).
    const replaceDir = () => {
      if (!isOurs(ctx, r)) {
        if (isNonEmpty(childAbs)) {
          ctx.conflicts.push(
            `folder ${childAbs} would be replaced by a ${entry.type} and is not empty${NOT_OURS}`,
          );
          return;
        }
      } else if (!ctx.force) checkRemoval(ctx, childAbs, r, entry.type);
      plan.removals.push({ abs: childAbs, rel: r, how: 'tree' });
    };
    if (entry.type === 'dir') {
      if (existing === 'dir') {
        subdirs.push({ abs: childAbs, rel: r, entry, exists: true });
      } else {
        // A file, symlink or socket in the way: removed (never followed) and replaced by a real folder.
        if (existing !== undefined) {
          if (!ours) ctx.conflicts.push(`${childAbs} would be replaced by a folder${NOT_OURS}`);
          plan.removals.push({ abs: childAbs, rel: r, how: 'file' });
        }
        subdirs.push({ abs: childAbs, rel: r, entry, exists: false });
      }
    } else if (entry.type === 'symlink') {
      const link = { abs: childAbs, rel: r, target: entry.target!, mode: entry.mode };
      if (existing === 'dir') {
        replaceDir();
        plan.links.push(link);
      } else if (existing === 'symlink') {
        const record = recordOf(ctx, r, 'symlink', rel, name);
        let current: string | undefined;
        try {
          current = readlinkSync(childAbs);
        } catch {
          current = undefined;
        }
        if (current !== entry.target) {
          if (!ours) ctx.conflicts.push(`${childAbs} is a symlink to another target${NOT_OURS}`);
          plan.links.push(link);
        } else {
          if (record >= 0) ctx.matched++;
          plan.linksKept.push({ rel: r, mode: entry.mode });
        }
      } else {
        if (existing !== undefined && !ours) {
          ctx.conflicts.push(`${childAbs} would be replaced by a symlink${NOT_OURS}`);
        }
        plan.links.push(link);
      }
    } else {
      if (existing === 'file') {
        // Looked up now, in the order the index is saved in; compared once every queued path is stat-ed. One
        // object per file (it is also the job if the file is written): a large tree keeps 200,000 of them.
        const record = recordOf(ctx, r, 'file', rel, name);
        ctx.pending.push({
          abs: childAbs,
          dirAbs: abs,
          rel: r,
          entry,
          plan,
          ours,
          record,
          stat: ctx.stats.add(childAbs),
          chmod: false,
        });
      } else {
        const job: FileJob = { abs: childAbs, dirAbs: abs, rel: r, entry };
        if (existing === 'dir') replaceDir();
        else if (existing !== undefined && !ours)
          ctx.conflicts.push(`${childAbs} would be replaced by a file${NOT_OURS}`);
        plan.files.push(job);
      }
    }
  }
  for (const d of subdirs) {
    plan.dirs.push(await planDir(ctx, d.abs, d.rel, ctx.trees.get(d.entry.digest)!, d.exists, d.entry.mode));
  }
  return plan;
}

/** A file found where the tree has one: decided once its `lstat` is in (see {@link StatQueue}). */
interface PendingFile extends FileJob {
  readonly plan: DirPlan;
  readonly ours: boolean;
  /** Its index record, or -1. */
  readonly record: number;
  /** Its number in the stat queue. */
  readonly stat: number;
  /** Kept, with other permission bits than the tree's. */
  chmod: boolean;
}

/** The facts of the file being decided (one object for all). */
const scratch = { mode: 0, size: 0, mtimeMs: 0, ino: 0 };

/** Whether a file found on disk is kept (by the index, or by hashing in a foreign folder) or written. */
function decideFile(ctx: PlanContext, p: PendingFile): void {
  const { plan, ours, record, entry, abs } = p;
  const job: FileJob = p;
  const status = ctx.stats.status(p.stat);
  if (status === STAT_FAILED) throw io(ctx.stats.failure(p.stat), abs, 'stat');
  // Gone since the listing: written like any missing file.
  if (status === STAT_GONE) {
    plan.files.push(job);
    return;
  }
  const facts = scratch;
  ctx.stats.read(p.stat, facts);
  const mode = facts.mode;
  const keep = () => {
    p.chmod = (mode & 0o7777) !== (entry.mode & FILE_MODE_MASK);
    plan.unchanged.push(p);
  };
  if ((mode & S_IFMT) !== S_IFREG) {
    if (!ours) ctx.conflicts.push(`${abs} differs from the tree${NOT_OURS}`);
    plan.files.push(job);
  } else if (record >= 0 && ctx.index.fileMatches(record, facts)) {
    // Never trusted when size, mtime, mode or inode differ, or when racy (see IndexView.fileMatches).
    if (ctx.index.hasDigest(record, entry.digest)) {
      ctx.matched++;
      keep();
    } else {
      if (!ours) ctx.conflicts.push(`${abs} differs from the tree${NOT_OURS}`);
      plan.files.push(job);
    }
  } else if (ours) {
    plan.files.push(job);
  } else {
    // In a folder fsw did not write, compare contents rather than overwrite someone's file.
    const comparison = ctx.hashLimit(async () => {
      if (await sameContent(abs, entry)) keep();
      else {
        ctx.conflicts.push(`${abs} differs from the tree${NOT_OURS}`);
        plan.files.push(job);
      }
    });
    // Awaited with the others after planning; a failure must not go unhandled meanwhile.
    comparison.catch(() => {});
    ctx.comparisons.push(comparison);
  }
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** Whether the file at `abs` holds the entry's content (by hashing it). */
async function sameContent(abs: string, entry: TreeEntry): Promise<boolean> {
  const { algorithm, hex } = splitDigest(entry.digest);
  if (algorithm !== 'blake3' && algorithm !== 'sha1') return false;
  try {
    const result = await hashFile(abs, { algorithm });
    return result.digest === hex;
  } catch (error) {
    throw io(error, abs, 'read');
  }
}

async function removePath(r: Removal, ignored: IgnoreMatcher): Promise<void> {
  try {
    if (r.how === 'file') await unlink(r.abs);
    else if (r.how === 'tree') await rm(r.abs, { recursive: true, force: true });
    else await prune(r.abs, r.rel, ignored);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw io(error, shown(r.abs), 'remove');
  }
}

/**
 * Removes a folder's contents except ignored paths; the folder goes too when nothing is left in it. Names are
 * listed as bytes (one that is not valid UTF-8 is removed like any other); an entry already gone is no failure and
 * does not end the pruning of the rest.
 */
async function prune(abs: FsPath, rel: string, ignored: IgnoreMatcher): Promise<void> {
  let dirents: Dirent<Buffer>[];
  try {
    dirents = await readdir(abs, { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw error;
  }
  const base = typeof abs === 'string' ? Buffer.from(abs) : abs;
  for (const d of dirents) {
    const r = `${rel}/${d.name.toString('utf8')}`;
    const isDir = d.isDirectory();
    if (ignored(r, isDir)) continue;
    const childAbs = Buffer.concat([base, SEP, d.name]);
    try {
      if (isDir) await prune(childAbs, r, ignored);
      else await unlink(childAbs);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw io(error, shown(childAbs), 'remove');
    }
  }
  try {
    await rmdir(abs);
  } catch (error) {
    const code = errnoOf(error);
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') throw error;
  }
}

// Objects below this size are written in batches of blocking calls (internal/file-jobs.ts).
const FAST_COPY_MAX = 1024 * 1024;

/** Writes one file beside its final name and renames it into place; returns the final file's stat. */
async function writeFile(
  store: Store,
  source: string | undefined,
  sourceMode: number | undefined,
  job: FileJob,
): Promise<Stats> {
  const temp = tempPath(job.dirAbs);
  const mode = job.entry.mode & FILE_MODE_MASK;
  try {
    if (source !== undefined) {
      // COPYFILE_EXCL: the temp name is fresh, so nothing (a planted symlink) can be written through;
      // FICLONE: a reflink where the filesystem can, a plain copy elsewhere.
      await copyFile(source, temp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    } else {
      const bytes = await store.get(job.entry.digest);
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(bytes);
      } finally {
        await handle.close();
      }
    }
    if ((store as Partial<LocalStore>).verify === true) {
      const { algorithm, hex } = splitDigest(job.entry.digest);
      const result = await hashFile(temp, { algorithm });
      if (result.digest !== hex) {
        // As `get` with verify does: a corrupt object goes, so that a pull can store it again.
        if (source !== undefined) await unlink(source).catch(() => {});
        throw new TreeError(
          'E_CORRUPT',
          `object ${job.entry.digest} in the store does not match its digest`,
          {
            path: source ?? job.abs,
          },
        );
      }
    }
    // copyFile gives the copy the object's own mode: most files need no chmod.
    if (source === undefined || sourceMode !== mode) await chmod(temp, mode);
    await rename(temp, job.abs);
    return await lstat(job.abs);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw io(error, job.abs, 'write');
  }
}
