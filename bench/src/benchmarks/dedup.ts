import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedDataset, DATA_ROOT, FSW_BIN, generatePhotoLibrary, generateSmallFiles } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

const fswBin = FSW_BIN;
/** The bare floor scripts (see `src/floors/dedup-floor.ts`). */
const FLOOR = fileURLToPath(new URL('../floors/dedup-floor.js', import.meta.url));
const _dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_DEDUP_PHOTOS` (default 8,000 files, log-normal around 400 KiB: ~5 GB, 8% exact duplicates and
 * 4% near-duplicates) and `FSW_BENCH_DEDUP_SMALL` (default 200,000 files of 0-4 KiB). `FSW_BENCH_DEDUP_RUNS` timed
 * runs per side (default 3).
 */
const PHOTOS = Number(process.env.FSW_BENCH_DEDUP_PHOTOS ?? 8_000);
const SMALL = Number(process.env.FSW_BENCH_DEDUP_SMALL ?? 200_000);
const RUNS = Number(process.env.FSW_BENCH_DEDUP_RUNS ?? 3);

function sides(label: string, root: string, scratch: string): Comparison[] {
  const fsw = (args: string[]) => [process.execPath, fswBin, 'dedup', ...args, root];
  const rows: Comparison[] = [];
  const cacheFile = join(scratch, `${label}.cache`);
  if (have('jdupes')) {
    rows.push(
      compare({
        name: `${label}: fsw dedup vs jdupes -r`,
        ours: { label: 'fsw dedup DIR', command: fsw([]) },
        peer: { label: 'jdupes -r -q DIR', command: ['jdupes', '-r', '-q', root] },
        runs: RUNS,
        target: 'ratio < 1',
      }),
    );
  } else process.stderr.write('bench: jdupes is not installed; skipping that comparison\n');
  if (have('rdfind')) {
    rows.push(
      compare({
        name: `${label}: fsw dedup vs rdfind`,
        ours: { label: 'fsw dedup DIR', command: fsw([]) },
        // rdfind writes results.txt into its working directory even in a dry run: keep it out of the tree.
        peer: {
          label: 'rdfind -dryrun true DIR',
          command: ['rdfind', '-dryrun', 'true', '-outputname', join(scratch, 'results.txt'), root],
        },
        runs: RUNS,
        target: 'ratio < 1',
      }),
    );
  } else process.stderr.write('bench: rdfind is not installed; skipping that comparison\n');
  // The floors: what no Node.js implementation can go below (one thread, or two as fsw uses).
  const floor = (mode: 'full' | 'cached', threads: 1 | 2) =>
    `FLOOR_THREADS=${threads} ${JSON.stringify(process.execPath)} ${JSON.stringify(FLOOR)} ${mode} ${JSON.stringify(root)}`;
  if (have('jdupes')) {
    rows.push(
      compare({
        name: `${label}: floor of a full run (bare script, 2 threads) vs jdupes -r`,
        ours: { label: 'dedup-floor.js full DIR (2 threads)', command: floor('full', 2) },
        peer: { label: 'jdupes -r -q DIR', command: ['jdupes', '-r', '-q', root] },
        runs: RUNS,
        target: 'below 1: beating jdupes is possible',
      }),
    );
  }
  for (const threads of [1, 2] as const) {
    const each = threads === 1 ? '1 thread' : '2 threads';
    rows.push(
      compare({
        name: `${label}: floor of a cached run (bare list + lstat, ${each}) vs fsw dedup`,
        ours: { label: `dedup-floor.js cached DIR (${each})`, command: floor('cached', threads) },
        peer: { label: 'fsw dedup DIR', command: fsw([]) },
        runs: RUNS,
        target: 'at most 0.33: the --cache target is possible',
      }),
    );
  }
  rows.push(
    compare({
      name: `${label}: second run with --cache vs a run without`,
      ours: { label: 'fsw dedup --cache-file F DIR (warm)', command: fsw(['--cache-file', cacheFile]) },
      peer: { label: 'fsw dedup DIR', command: fsw([]) },
      runs: RUNS,
      target: 'ratio <= 0.33',
    }),
  );
  return rows;
}

/** `fsw dedup` against `jdupes -r` and `rdfind -dryrun true`, warm page cache, whole process, peak RSS. */
export const dedup: Benchmark = {
  name: 'dedup',
  run: () => {
    const scratch = mkdtempSync(join(tmpdir(), 'fsw-bench-dedup-'));
    try {
      const rows: Comparison[] = [];
      if (PHOTOS > 0) {
        const photos = cachedDataset(`dedup-photos-${PHOTOS}`, (root) => {
          const made = generatePhotoLibrary(root, { files: PHOTOS });
          process.stderr.write(
            `bench: ${made.files} files, ${(made.bytes / 2 ** 30).toFixed(2)} GiB, ${made.duplicates} duplicates, ${made.nearDuplicates} near-duplicates\n`,
          );
        });
        rows.push(...sides(`photos (${PHOTOS} files)`, photos, scratch));
      }
      if (SMALL > 0) {
        const small = cachedDataset(`dedup-small-${SMALL}`, (root) =>
          generateSmallFiles(root, { files: SMALL, dirs: Math.max(1, Math.round(SMALL / 50)), seed: 5 }),
        );
        rows.push(...sides(`small files (${SMALL})`, small, scratch));
      }
      return rows;
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  },
};
