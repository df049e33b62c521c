import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_ROOT, FSW_BIN, rng } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

const fswBin = FSW_BIN;
// bench/dist/benchmarks/hash.js -> bench/.data
const dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_HASH_BIG_MIB` (size of the big file, default 1024 = 1 GiB), `FSW_BENCH_HASH_FILES` (default
 * 10,000) of `FSW_BENCH_HASH_FILE_KIB` (default 100) each, `FSW_BENCH_HASH_RUNS` (default 5).
 */
const BIG_MIB = Number(process.env.FSW_BENCH_HASH_BIG_MIB ?? 1024);
const FILES = Number(process.env.FSW_BENCH_HASH_FILES ?? 10_000);
const FILE_KIB = Number(process.env.FSW_BENCH_HASH_FILE_KIB ?? 100);
const RUNS = Number(process.env.FSW_BENCH_HASH_RUNS ?? 5);

function fill(random: () => number, buf: Buffer): Buffer {
  for (let i = 0; i + 4 <= buf.length; i += 4) buf.writeUInt32LE((random() * 4294967296) >>> 0, i);
  return buf;
}

/** One big file of seeded random bytes, generated once (a marker records that it is complete). */
function bigFile(): string {
  const file = join(dataRoot, `hash-big-${BIG_MIB}m.bin`);
  const marker = `${file}.complete`;
  if (existsSync(marker)) return file;
  mkdirSync(dataRoot, { recursive: true });
  process.stderr.write(`bench: generating ${BIG_MIB} MiB in ${file}...\n`);
  const random = rng(11);
  const fd = openSync(file, 'w');
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < BIG_MIB; i++) writeSync(fd, fill(random, chunk));
  closeSync(fd);
  writeFileSync(marker, '');
  return file;
}

/** FILES files of FILE_KIB each in 100 folders, and a list of their paths (one per line). */
function manyFiles(): { root: string; list: string } {
  const name = `hash-many-${FILES}x${FILE_KIB}k`;
  const root = join(dataRoot, name);
  const list = join(dataRoot, `${name}.list`);
  const marker = join(dataRoot, `${name}.complete`);
  if (existsSync(marker)) return { root, list };
  rmSync(root, { recursive: true, force: true });
  process.stderr.write(`bench: generating ${FILES} files of ${FILE_KIB} KiB under ${root}...\n`);
  const random = rng(12);
  const buf = Buffer.allocUnsafe(FILE_KIB * 1024);
  const paths: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const dir = join(root, `d${String(i % 100).padStart(2, '0')}`);
    if (i < 100) mkdirSync(dir, { recursive: true });
    const p = join(dir, `f${String(i).padStart(5, '0')}.bin`);
    writeFileSync(p, fill(random, buf));
    paths.push(p);
  }
  // The order `fsw hash -r` uses (sorted per directory), so both sides read the files in the same order.
  paths.sort();
  writeFileSync(list, `${paths.join('\n')}\n`);
  writeFileSync(marker, '');
  return { root, list };
}

const fsw = (args: readonly string[]) => [process.execPath, fswBin, 'hash', ...args];

/** `fsw hash` against b3sum and sha256sum: one big file, then many small ones. Whole process, warm cache. */
export const hash: Benchmark = {
  name: 'hash',
  run: () => {
    const rows: Comparison[] = [];
    const big = bigFile();
    const size = `${BIG_MIB >= 1024 ? `${BIG_MIB / 1024} GiB` : `${BIG_MIB} MiB`}`;
    if (have('b3sum')) {
      rows.push(
        compare({
          name: `blake3, one ${size} file, vs single-threaded b3sum`,
          ours: { label: 'fsw hash --algo blake3', command: fsw(['--algo', 'blake3', big]) },
          peer: { label: 'b3sum --num-threads 1', command: ['b3sum', '--num-threads', '1', big] },
          runs: RUNS,
          target: 'ratio <= 1.25',
        }),
        compare({
          name: `blake3, one ${size} file, vs multi-threaded b3sum`,
          ours: { label: 'fsw hash --algo blake3', command: fsw(['--algo', 'blake3', big]) },
          peer: { label: 'b3sum', command: ['b3sum', big] },
          runs: RUNS,
        }),
      );
    }
    if (have('sha256sum')) {
      rows.push(
        compare({
          name: `sha256, one ${size} file`,
          ours: { label: 'fsw hash --algo sha256', command: fsw(['--algo', 'sha256', big]) },
          peer: { label: 'sha256sum', command: ['sha256sum', big] },
          runs: RUNS,
          target: 'ratio <= 0.5',
        }),
      );
    }
    if (have('b3sum')) {
      const { root, list } = manyFiles();
      rows.push(
        compare({
          name: `blake3, ${FILES} files of ${FILE_KIB} KiB`,
          ours: { label: 'fsw hash -r', command: fsw(['-r', root]) },
          peer: { label: 'b3sum (same list, via xargs)', command: `xargs -d '\\n' -a '${list}' b3sum` },
          runs: RUNS,
          target: 'ratio <= 1',
        }),
      );
    }
    return rows;
  },
};
