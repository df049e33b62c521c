import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same dataset on every machine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(random: () => number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let i = 0;
  for (; i + 4 <= size; i += 4) buf.writeUInt32LE((random() * 4294967296) >>> 0, i);
  for (; i < size; i++) buf[i] = (random() * 256) | 0;
  return buf;
}

/** Options of {@link generateSmallFiles}. */
export interface SmallFilesOptions {
  /** @default 200_000 */
  readonly files?: number;
  /** @default 4_000 */
  readonly dirs?: number;
  /** Largest file size in bytes (sizes are uniform in 0..max). @default 4096 */
  readonly maxBytes?: number;
  /** @default 1 */
  readonly seed?: number;
}

/** A tree of many small files spread over nested folders (two levels), like a source tree or node_modules. */
export function generateSmallFiles(
  root: string,
  options: SmallFilesOptions = {},
): { files: number; bytes: number } {
  const random = rng(options.seed ?? 1);
  const files = options.files ?? 200_000;
  const dirs = options.dirs ?? 4_000;
  const maxBytes = options.maxBytes ?? 4096;
  const top = Math.max(1, Math.round(Math.sqrt(dirs)));
  const dirPaths: string[] = [];
  for (let d = 0; d < dirs; d++) {
    const p = join(root, `d${d % top}`, `sub${d}`);
    mkdirSync(p, { recursive: true });
    dirPaths.push(p);
  }
  let bytes = 0;
  for (let f = 0; f < files; f++) {
    const size = Math.floor(random() * (maxBytes + 1));
    bytes += size;
    writeFileSync(join(dirPaths[f % dirs]!, `f${f}.dat`), fill(random, size));
  }
  return { files, bytes };
}

/** Options of {@link generatePhotoLibrary}. */
export interface PhotoLibraryOptions {
  /** @default 8_000 */
  readonly files?: number;
  /** Median file size; sizes are log-normal around it. @default 400 KiB */
  readonly medianBytes?: number;
  /** Spread of the log-normal (sigma of ln size). @default 1 */
  readonly sigma?: number;
  /** Share of files that are exact copies of an earlier one. @default 0.08 */
  readonly duplicateRate?: number;
  /** Share of files that equal an earlier one but for a few bytes (same size, same head). @default 0.04 */
  readonly nearDuplicateRate?: number;
  /** @default 2 */
  readonly seed?: number;
}

/** A photo-library-like tree: year/month folders, log-normal sizes, exact duplicates and near-duplicates. */
export function generatePhotoLibrary(
  root: string,
  options: PhotoLibraryOptions = {},
): { files: number; bytes: number; duplicates: number; nearDuplicates: number } {
  const random = rng(options.seed ?? 2);
  const files = options.files ?? 8_000;
  const median = options.medianBytes ?? 400 * 1024;
  const sigma = options.sigma ?? 1;
  const dupRate = options.duplicateRate ?? 0.08;
  const nearRate = options.nearDuplicateRate ?? 0.04;
  const originals: Buffer[] = [];
  let bytes = 0;
  let duplicates = 0;
  let nearDuplicates = 0;
  for (let i = 0; i < files; i++) {
    const dir = join(root, String(2010 + (i % 12)), String(1 + ((i >> 4) % 12)).padStart(2, '0'));
    mkdirSync(dir, { recursive: true });
    const roll = random();
    let data: Buffer;
    if (originals.length > 0 && roll < dupRate) {
      data = originals[Math.floor(random() * originals.length)]!;
      duplicates++;
    } else if (originals.length > 0 && roll < dupRate + nearRate) {
      data = Buffer.from(originals[Math.floor(random() * originals.length)]!);
      // Same size and same first and last 4 KiB where possible: only the middle differs.
      const at = Math.floor(data.length / 2);
      data[at] = (data[at]! + 1) & 0xff;
      nearDuplicates++;
    } else {
      // Box-Muller for a normal variate, then exp for log-normal sizes.
      const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      const size = Math.max(1, Math.min(64 * 1024 * 1024, Math.round(median * Math.exp(sigma * z))));
      data = fill(random, size);
      if (originals.length < 2000) originals.push(data);
      else originals[Math.floor(random() * originals.length)] = data;
    }
    bytes += data.length;
    writeFileSync(join(dir, `IMG_${String(i).padStart(5, '0')}.jpg`), data);
  }
  return { files, bytes, duplicates, nearDuplicates };
}

/** The built `fsw` entry point the benchmarks run. */
export const FSW_BIN = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));

/** Runs `fsw ARGS` to completion (with `env` over the current environment) and returns its trimmed stdout. */
export function fswOutput(args: readonly string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [FSW_BIN, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`fsw ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Where generated datasets live (git-ignored). */
export const DATA_ROOT = fileURLToPath(new URL('../.data', import.meta.url));

/**
 * Generates a dataset once under {@link DATA_ROOT} and reuses it on later runs: a `<name>.complete` marker is
 * written only after `generate` finished, so an interrupted generation is redone, never half-used.
 */
export function cachedDataset(name: string, generate: (root: string) => void): string {
  const root = join(DATA_ROOT, name);
  const marker = join(DATA_ROOT, `${name}.complete`);
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  process.stderr.write(`bench: generating ${root}...\n`);
  generate(root);
  writeFileSync(marker, '');
  return root;
}
