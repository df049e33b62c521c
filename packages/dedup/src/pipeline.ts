import type { FswError } from '@fsw/errors';
import { MemoryDigests } from './cache.js';
import type {
  CandidateGroup,
  DedupFile,
  DedupProgress,
  DedupStage,
  DigestStore,
  DuplicateGroup,
  StageContext,
} from './types.js';

const PROGRESS_EVERY_MS = 100;

/** The options of a pipeline run, resolved. */
export interface PipelineOptions {
  readonly stages: readonly DedupStage[];
  readonly concurrency: number;
  readonly digests?: DigestStore;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: DedupProgress) => void) | undefined;
  readonly onError?: ((error: FswError) => 'skip' | 'throw') | undefined;
}

/** What a pipeline run found. */
export interface PipelineResult {
  readonly groups: DuplicateGroup[];
  readonly bytesRead: number;
  readonly skipped: number;
}

/**
 * Runs `stages` in order over `files` (distinct inodes): the first stage receives one group of every file; each
 * stage's groups of fewer than two files are dropped before the next stage runs.
 */
export async function runPipeline(
  files: readonly DedupFile[],
  options: PipelineOptions,
): Promise<PipelineResult> {
  const { signal, onProgress } = options;
  const onError = options.onError ?? (() => 'throw' as const);
  const digests = options.digests ?? new MemoryDigests();
  let groups: readonly CandidateGroup[] = files.length >= 2 ? [{ files, key: '' }] : [];
  let bytesRead = 0;
  let skipped = 0;
  for (const stage of options.stages) {
    signal?.throwIfAborted();
    if (groups.length === 0) break;
    let total = 0;
    for (const group of groups) total += group.files.length;
    let done = 0;
    let prepared = 0;
    let refined = 0;
    let bytes = 0;
    let last = 0;
    const report = (force: boolean) => {
      if (onProgress === undefined) return;
      const now = performance.now();
      if (!force && now - last < PROGRESS_EVERY_MS) return;
      last = now;
      onProgress({ stage: stage.name, done, total, bytes });
    };
    const ctx: StageContext = {
      signal,
      concurrency: options.concurrency,
      digests,
      addBytes(n) {
        bytes += n;
        bytesRead += n;
        report(false);
      },
      addDone(n) {
        prepared += n;
        if (prepared > done) {
          done = Math.min(prepared, total);
          report(false);
        }
      },
      fail(error) {
        if (onError(error) === 'throw') throw error;
        skipped++;
      },
    };
    report(true);
    if (stage.prepare) await stage.prepare(groups, ctx);
    const next: CandidateGroup[] = [];
    const keep = (out: readonly CandidateGroup[], from: CandidateGroup) => {
      for (const group of out) if (group.files.length >= 2) next.push(group);
      refined += from.files.length;
      if (refined > done) done = refined;
      report(false);
    };
    const running = new Set<Promise<void>>();
    for (const group of groups) {
      const refined = stage.refine(group, ctx);
      // Synchronous stages (size, extension...) skip the scheduling entirely.
      if (!isPromise(refined)) {
        keep(refined, group);
        continue;
      }
      const task: Promise<void> = refined.then((r) => keep(r, group)).finally(() => running.delete(task));
      // The first failure is rethrown below; later ones of tasks still running must not go unhandled.
      task.catch(() => {});
      running.add(task);
      if (running.size >= options.concurrency) await Promise.race(running);
    }
    await Promise.all(running);
    signal?.throwIfAborted();
    done = total;
    report(true);
    groups = next;
  }
  return { groups: groups.map(toDuplicateGroup).sort(byWaste), bytesRead, skipped };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toDuplicateGroup(group: CandidateGroup): DuplicateGroup {
  const files = [...group.files].sort((a, b) => comparePaths(a.path, b.path));
  let size = 0;
  let sum = 0;
  for (const file of files) {
    size = Math.max(size, file.size);
    sum += file.size;
  }
  if (files.every((file) => file.rawPaths === undefined)) {
    const paths = files.flatMap((file) => file.paths).sort(comparePaths);
    return { digest: group.key, size, paths, wastedBytes: sum - size, files };
  }
  // Some name is not valid UTF-8: its exact bytes go along, in the same order (lossy forms may tie: bytes decide).
  const names = files.flatMap((file) => file.paths.map((path, i) => ({ path, raw: file.rawPaths?.[i] })));
  names.sort(
    (a, b) =>
      comparePaths(a.path, b.path) ||
      Buffer.compare(a.raw ?? Buffer.from(a.path), b.raw ?? Buffer.from(b.path)),
  );
  return {
    digest: group.key,
    size,
    paths: names.map((n) => n.path),
    rawPaths: names.map((n) => n.raw),
    wastedBytes: sum - size,
    files,
  };
}

function byWaste(a: DuplicateGroup, b: DuplicateGroup): number {
  return b.wastedBytes - a.wastedBytes || comparePaths(a.paths[0] ?? '', b.paths[0] ?? '');
}
