import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cachedDataset,
  DATA_ROOT,
  FSW_BIN,
  generatePhotoLibrary,
  generateSmallFiles,
  rng,
} from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

const fswBin = FSW_BIN;
const dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_COPY_SMALL` files of 0-4 KiB (default 200,000), `FSW_BENCH_COPY_PHOTOS` photo-like files
 * (log-normal around 400 KiB, default 1,500: ~1 GB, the shared `copy-photos-1500` tree), `FSW_BENCH_COPY_BIG` files of `FSW_BENCH_COPY_BIG_MIB` MiB
 * (default 4 x 1024). `FSW_BENCH_COPY_RUNS` timed runs per side (default 3).
 */
const SMALL = Number(process.env.FSW_BENCH_COPY_SMALL ?? 200_000);
const PHOTOS = Number(process.env.FSW_BENCH_COPY_PHOTOS ?? 1_500);
const BIG = Number(process.env.FSW_BENCH_COPY_BIG ?? 4);
const BIG_MIB = Number(process.env.FSW_BENCH_COPY_BIG_MIB ?? 1024);
const RUNS = Number(process.env.FSW_BENCH_COPY_RUNS ?? 3);

/** `count` files of `mib` MiB of seeded bytes (one 1 MiB block repeated with a counter, written in large chunks). */
function generateBigFiles(root: string, count: number, mib: number): void {
  const random = rng(3);
  const block = Buffer.allocUnsafe(1024 * 1024);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((random() * 4294967296) >>> 0, i);
  const chunk = Buffer.allocUnsafe(64 * 1024 * 1024);
  for (let f = 0; f < count; f++) {
    const path = join(root, `big${f}.bin`);
    writeFileSync(path, '');
    for (let written = 0; written < mib; written += 64) {
      const blocks = Math.min(64, mib - written);
      for (let b = 0; b < blocks; b++) {
        block.copy(chunk, b * block.length);
        // A counter per block, so that no two blocks are equal (no dedup or compression can shortcut the copy).
        chunk.writeUInt32LE(f * 1_000_000 + written + b, b * block.length);
      }
      writeFileSync(path, chunk.subarray(0, blocks * block.length), { flag: 'a' });
    }
  }
}

function rmrf(path: string): void {
  // rm(1) removes a 200,000-file tree faster than fs.rmSync, and this runs before every timed run.
  spawnSync('rm', ['-rf', path], { stdio: 'ignore' });
}

function sides(
  label: string,
  src: string,
  out: string,
  peers: ('cp' | 'rsync')[],
  cpTarget: string,
): Comparison[] {
  const rows: Comparison[] = [];
  const ours = { label: 'fsw copy -q SRC DEST', command: [process.execPath, fswBin, 'copy', '-q', src, out] };
  const before = () => rmrf(out);
  if (peers.includes('cp')) {
    rows.push(
      compare({
        name: `${label}: fsw copy vs cp -r`,
        ours,
        peer: { label: 'cp -r SRC DEST', command: ['cp', '-r', src, out] },
        runs: RUNS,
        before,
        target: cpTarget,
      }),
    );
  }
  if (peers.includes('rsync')) {
    if (have('rsync')) {
      rows.push(
        compare({
          name: `${label}: fsw copy vs rsync -a`,
          ours,
          peer: { label: 'rsync -a SRC/ DEST/', command: ['rsync', '-a', `${src}/`, `${out}/`] },
          runs: RUNS,
          before,
          target: 'ratio <= 1',
        }),
      );
    } else process.stderr.write('bench: rsync is not installed; skipping that comparison\n');
  }
  rmrf(out);
  return rows;
}

/** `fsw copy` against `cp -r` and `rsync -a`: warm page cache, whole process, destination removed before each run. */
export const copy: Benchmark = {
  name: 'copy',
  run: () => {
    const out = join(dataRoot, 'copy-out');
    const rows: Comparison[] = [];
    const small = cachedDataset(`copy-small-${SMALL}`, (root) =>
      generateSmallFiles(root, { files: SMALL, seed: 11 }),
    );
    rows.push(
      ...sides(`${SMALL.toLocaleString('en')} files of 0-4 KiB`, small, out, ['cp', 'rsync'], 'ratio <= 1'),
    );
    const photos = cachedDataset(`copy-photos-${PHOTOS}`, (root) =>
      generatePhotoLibrary(root, { files: PHOTOS, seed: 12 }),
    );
    rows.push(
      ...sides(
        `photo-like tree, ${PHOTOS.toLocaleString('en')} files`,
        photos,
        out,
        ['cp', 'rsync'],
        'ratio <= 1.1',
      ),
    );
    const big = cachedDataset(`copy-big-${BIG}x${BIG_MIB}m`, (root) => generateBigFiles(root, BIG, BIG_MIB));
    const bigLabel =
      BIG_MIB % 1024 === 0 ? `${BIG} x ${BIG_MIB / 1024} GiB files` : `${BIG} x ${BIG_MIB} MiB files`;
    rows.push(...sides(bigLabel, big, out, ['cp'], 'ratio <= 1.1'));
    return rows;
  },
};
