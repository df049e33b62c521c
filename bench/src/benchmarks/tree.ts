import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { cachedDataset, DATA_ROOT, FSW_BIN, fswOutput, generateSmallFiles } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

/** Scale: `FSW_BENCH_TREE_FILES` small files (default 200,000, in FILES/50 folders); `FSW_BENCH_TREE_RUNS` (5). */
const FILES = Number(process.env.FSW_BENCH_TREE_FILES ?? 200_000);
const DIRS = Math.max(1, Math.round(FILES / 50));
const RUNS = Number(process.env.FSW_BENCH_TREE_RUNS ?? 5);

/** The tree, generated once and reused on later runs. */
function dataset(): string {
  return cachedDataset(`tree-${FILES}`, (root) =>
    generateSmallFiles(root, { files: FILES, dirs: DIRS, maxBytes: 4096, seed: 8 }),
  );
}

/**
 * `fsw write-tree` cold (empty store, no index) against the b3sum pipeline, warm (index) against `find -printf`,
 * and `fsw checkout` into an empty folder against `cp -r`: whole processes, side by side.
 */
export const treeBenchmark: Benchmark = {
  name: 'tree',
  run: () => {
    const root = dataset();
    const work = join(DATA_ROOT, 'tree-work');
    const store = join(work, 'store');
    const env = { FSTREE_CACHE: store, FSTREE_IGNORE: '', FSTREE_THREADS: '' };
    const reset = () => {
      rmSync(store, { recursive: true, force: true });
      rmSync(join(root, '.fstree'), { recursive: true, force: true });
    };
    const rows: Comparison[] = [];
    if (have('b3sum')) {
      rows.push(
        compare({
          name: `write-tree cold (empty store), ${FILES} files`,
          ours: {
            label: 'fsw write-tree --no-index DIR',
            command: [process.execPath, FSW_BIN, 'write-tree', '--no-index', root],
            env,
          },
          peer: {
            label: 'find DIR -type f -print0 | xargs -0 b3sum',
            command: `find '${root}' -type f -print0 | xargs -0 b3sum > /dev/null`,
          },
          before: reset,
          runs: RUNS,
          target: 'ratio <= 1.5',
        }),
      );
    } else {
      process.stderr.write('bench: b3sum not installed, skipping the cold write-tree comparison\n');
    }
    reset();
    const digest = fswOutput(['write-tree', root], env);
    rows.push(
      compare({
        name: `write-tree warm (unchanged, index), ${FILES} files`,
        ours: { label: 'fsw write-tree DIR', command: [process.execPath, FSW_BIN, 'write-tree', root], env },
        peer: {
          label: "find DIR -printf '%s %T@ %p\\n'",
          command: ['find', root, '-printf', '%s %T@ %p\\n'],
        },
        runs: RUNS,
        target: 'ratio <= 1.5',
      }),
    );
    const outOurs = join(work, 'checkout');
    const outPeer = join(work, 'cp');
    rows.push(
      compare({
        name: `checkout into an empty folder, ${FILES} files`,
        ours: {
          label: 'fsw checkout DIGEST OUT',
          command: [process.execPath, FSW_BIN, 'checkout', digest, outOurs],
          env,
        },
        peer: { label: 'cp -r DIR OUT', command: ['cp', '-r', root, outPeer] },
        before: () => {
          rmSync(outOurs, { recursive: true, force: true });
          rmSync(outPeer, { recursive: true, force: true });
        },
        runs: RUNS,
        target: 'ratio <= 1',
      }),
    );
    rmSync(work, { recursive: true, force: true });
    rmSync(join(root, '.fstree'), { recursive: true, force: true });
    return rows;
  },
};
