import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSmallFiles } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

const require = createRequire(import.meta.url);
const fswBin = require.resolve('@fsw/cli/package.json').replace(/package\.json$/, 'dist/bin.js');
// bench/dist/benchmarks/tree.js -> bench/.data
const dataRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.data');

/** Scale: `FSW_BENCH_TREE_FILES` small files (default 200,000, in FILES/50 folders); `FSW_BENCH_TREE_RUNS` (5). */
const FILES = Number(process.env.FSW_BENCH_TREE_FILES ?? 200_000);
const DIRS = Math.max(1, Math.round(FILES / 50));
const RUNS = Number(process.env.FSW_BENCH_TREE_RUNS ?? 5);

/** Generates the tree once and reuses it on later runs (a marker file records that it is complete). */
function dataset(): string {
  const root = join(dataRoot, `tree-${FILES}`);
  const marker = join(dataRoot, `tree-${FILES}.complete`);
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  process.stderr.write(`bench: generating ${FILES} files in ${DIRS} folders under ${root}...\n`);
  generateSmallFiles(root, { files: FILES, dirs: DIRS, maxBytes: 4096, seed: 8 });
  writeFileSync(marker, '');
  return root;
}

function fsw(args: readonly string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [fswBin, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`fsw ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * `fsw write-tree` cold (empty store, no index) against the b3sum pipeline, warm (index) against `find -printf`,
 * and `fsw checkout` into an empty folder against `cp -r`: whole processes, side by side.
 */
export const treeBenchmark: Benchmark = {
  name: 'tree',
  run: () => {
    const root = dataset();
    const work = join(dataRoot, 'tree-work');
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
            command: [process.execPath, fswBin, 'write-tree', '--no-index', root],
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
    const digest = fsw(['write-tree', root], env);
    rows.push(
      compare({
        name: `write-tree warm (unchanged, index), ${FILES} files`,
        ours: { label: 'fsw write-tree DIR', command: [process.execPath, fswBin, 'write-tree', root], env },
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
          command: [process.execPath, fswBin, 'checkout', digest, outOurs],
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
