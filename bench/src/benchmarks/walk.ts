import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { walkAll } from '@fsw/walk';
import { fdir } from 'fdir';
import { DATA_ROOT, FSW_BIN, generateSmallFiles } from '../dataset.js';
import { type Comparison, compare, have, type Measured } from '../harness.js';
import type { Benchmark } from '../run.js';

const require = createRequire(import.meta.url);
const fswBin = FSW_BIN;
const walkEntry = pathToFileURL(require.resolve('@fsw/walk')).href;
// bench/dist/benchmarks/walk.js -> bench/.data
const dataRoot = DATA_ROOT;

/** Scale: `FSW_BENCH_WALK_FILES` (default 200,000 files in ~4,000 folders) and `FSW_BENCH_WALK_MEMORY_FILES` (1,000,000; 0 skips). */
const FILES = Number(process.env.FSW_BENCH_WALK_FILES ?? 200_000);
const DIRS = Math.max(1, Math.round(FILES / 50));
const MEMORY_FILES = Number(process.env.FSW_BENCH_WALK_MEMORY_FILES ?? 1_000_000);

/** Generates a tree once and reuses it on later runs (a marker file records that it is complete). */
function dataset(name: string, files: number, dirs: number, maxBytes: number): string {
  const root = join(dataRoot, name);
  const marker = join(dataRoot, `${name}.complete`);
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  process.stderr.write(`bench: generating ${files} files in ${dirs} folders under ${root}...\n`);
  generateSmallFiles(root, { files, dirs, maxBytes, seed: 3 });
  writeFileSync(marker, '');
  return root;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function measured(label: string, ms: readonly number[]): Measured {
  return { label, medianMs: median(ms), minMs: Math.min(...ms), maxMs: Math.max(...ms) };
}

/** `walkAll` against the bare fdir crawl it is built on, alternating inside this one process. */
async function inProcess(root: string, runs: number): Promise<Comparison> {
  const ours: number[] = [];
  const peer: number[] = [];
  const raw = () => new fdir().withFullPaths().withDirs().crawl(root).withPromise();
  const counts = [0, 0];
  for (let i = -1; i < runs; i++) {
    const order = i % 2 === 0 ? [0, 1] : [1, 0];
    for (const side of order) {
      const start = process.hrtime.bigint();
      const n = side === 0 ? (await walkAll(root)).length : (await raw()).length;
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      counts[side] = n;
      // The first round warms the cache and the JIT.
      if (i >= 0) (side === 0 ? ours : peer).push(ms);
    }
  }
  // fdir counts the root among the directories; walk does not yield it.
  if (counts[0] !== (counts[1] as number) - 1)
    throw new Error(`walkAll found ${counts[0]} entries, fdir ${counts[1]}`);
  const o = measured('walkAll(dir)', ours);
  const p = measured('new fdir().withFullPaths().withDirs()', peer);
  return {
    name: 'walkAll vs raw fdir, in process',
    ours: o,
    peer: p,
    ratio: o.medianMs / p.medianMs,
    target: 'ratio <= 1.1',
  };
}

function script(body: string): string[] {
  return [
    process.execPath,
    '--input-type=module',
    '-e',
    `import { walk, walkAll } from ${JSON.stringify(walkEntry)};\n${body}`,
  ];
}

/** Whole-process comparisons of `fsw walk` against find and fd, and peak memory of streaming against collecting. */
export const walkBenchmark: Benchmark = {
  name: 'walk',
  run: async () => {
    const root = dataset(`walk-${FILES}`, FILES, DIRS, 4096);
    const rows: Comparison[] = [];
    rows.push(
      compare({
        name: `names, ${FILES} files / ${DIRS} dirs`,
        ours: { label: 'fsw walk DIR', command: [process.execPath, fswBin, 'walk', root] },
        peer: { label: 'find DIR', command: ['find', root] },
        target: 'ratio <= 2',
      }),
    );
    if (have('fdfind')) {
      rows.push(
        compare({
          name: `names, ${FILES} files / ${DIRS} dirs`,
          ours: { label: 'fsw walk DIR', command: [process.execPath, fswBin, 'walk', root] },
          peer: { label: 'fdfind -u . DIR', command: ['fdfind', '-u', '.', root] },
        }),
      );
    }
    // The floor of any Node.js walker: start-up plus a bare fdir crawl printing its paths, against find.
    const fdirEntry = pathToFileURL(require.resolve('fdir')).href;
    rows.push(
      compare({
        name: `floor: Node.js + bare fdir, ${FILES} files`,
        ours: {
          label: 'node: fdir crawl, print paths',
          command: [
            process.execPath,
            '--input-type=module',
            '-e',
            `import { fdir } from ${JSON.stringify(fdirEntry)};\nconst paths = await new fdir().withFullPaths().withDirs().crawl(${JSON.stringify(root)}).withPromise();\nprocess.stdout.write(paths.join('\\n') + '\\n');`,
          ],
        },
        peer: { label: 'find DIR', command: ['find', root] },
      }),
    );
    rows.push(
      compare({
        name: `with sizes, ${FILES} files / ${DIRS} dirs`,
        ours: { label: 'fsw walk --json DIR', command: [process.execPath, fswBin, 'walk', '--json', root] },
        peer: { label: "find DIR -printf '%s %p\\n'", command: ['find', root, '-printf', '%s %p\\n'] },
        target: 'ratio <= 1.5',
      }),
    );
    rows.push(await inProcess(root, 7));
    if (MEMORY_FILES > 0) {
      const big = dataset(
        `walk-${MEMORY_FILES}-empty`,
        MEMORY_FILES,
        Math.max(1, Math.round(MEMORY_FILES / 50)),
        0,
      );
      rows.push(
        compare({
          name: `peak memory, ${MEMORY_FILES} entries (see RSS column)`,
          ours: {
            label: 'for await (walk(DIR)) n++',
            command: script(
              `let n = 0; for await (const _ of walk(${JSON.stringify(big)})) n++; if (n < ${MEMORY_FILES}) process.exit(1);`,
            ),
          },
          peer: {
            label: '(await walkAll(DIR)).length',
            command: script(
              `const n = (await walkAll(${JSON.stringify(big)})).length; if (n < ${MEMORY_FILES}) process.exit(1);`,
            ),
          },
          runs: 3,
        }),
      );
    }
    return rows;
  },
};
