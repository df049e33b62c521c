import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DATA_ROOT, generateSmallFiles } from '../dataset.js';
import type { Comparison, Measured } from '../harness.js';
import type { Benchmark } from '../run.js';

const require = createRequire(import.meta.url);
const watchEntry = pathToFileURL(require.resolve('@fsw/watch')).href;
const chokidarEntry = pathToFileURL(require.resolve('chokidar')).href;
// bench/dist/benchmarks/watch.js -> bench/.data
const dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_WATCH_FILES` (default 100,000 files in 2,000 folders for start-up and memory),
 * `FSW_BENCH_WATCH_BURST` (10,000 files created at once), `FSW_BENCH_WATCH_RUNS` (start-up runs per side, 3).
 */
const FILES = Number(process.env.FSW_BENCH_WATCH_FILES ?? 100_000);
const BURST = Number(process.env.FSW_BENCH_WATCH_BURST ?? 10_000);
const RUNS = Number(process.env.FSW_BENCH_WATCH_RUNS ?? 3);
const LATENCY_WRITES = 60;
// Two spacings of single writes: saves seconds apart, and a busy 150 ms rhythm. @parcel/watcher hands over the first
// change after 500 ms of quiet at once, but holds later ones until 50 ms pass without another.
const LATENCY_GAPS_MS = [600, 150] as const;

type Side = 'fsw' | 'chokidar';

// One child process per measurement, so that start-up time and peak RSS are those of a fresh process.
// Each script prints one JSON line. Both sides use their smallest delay: fsw debounceMs 0, chokidar's defaults
// (no awaitWriteFinish; its `atomic` delay only applies to deletions).
const PRELUDE = `
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const [side, mode, root, count] = process.argv.slice(2);
const now = () => performance.now();
async function open(onEvent) {
  if (side === 'fsw') {
    const { FileWatcher } = await import(${JSON.stringify(watchEntry)});
    const w = new FileWatcher(root, { debounceMs: 0 });
    w.on('events', (batch) => { for (const e of batch) onEvent(e.type, e.path); });
    await w.start();
    return () => w.close();
  }
  const { watch } = await import(${JSON.stringify(chokidarEntry)});
  const w = watch(root, { ignoreInitial: true });
  w.on('all', (type, path) => onEvent(type, path));
  await new Promise((resolve, reject) => { w.once('ready', resolve); w.once('error', reject); });
  return () => w.close();
}
`;

const SCRIPT = `${PRELUDE}
if (mode === 'startup') {
  const t0 = now();
  const close = await open(() => {});
  const ms = now() - t0;
  const rssKiB = process.resourceUsage().maxRSS;
  await close();
  console.log(JSON.stringify({ ms, rssKiB }));
} else if (mode === 'latency') {
  const sent = new Map();
  const lat = [];
  let done;
  const finished = new Promise((r) => (done = r));
  const close = await open((type, path) => {
    const t = sent.get(path);
    if (t === undefined) return;
    sent.delete(path);
    lat.push(now() - t);
    if (lat.length === Number(count)) done();
  });
  for (let i = 0; i < Number(count); i++) {
    const p = join(root, 'l' + i + '.txt');
    sent.set(p, now());
    writeFileSync(p, 'x');
    await new Promise((r) => setTimeout(r, Number(process.env.GAP_MS)));
  }
  await Promise.race([finished, new Promise((r) => setTimeout(r, 5000))]);
  await close();
  console.log(JSON.stringify({ lat, lost: sent.size }));
} else if (mode === 'burst') {
  const seen = new Set();
  let last = now();
  const close = await open((type, path) => {
    if (type === 'created' || type === 'add') { seen.add(path); last = now(); }
  });
  const t0 = now();
  for (let i = 0; i < Number(count); i++) writeFileSync(join(root, 'b' + i + '.txt'), 'x');
  last = now();
  // Until every file arrived, or 5 s without a new one.
  while (seen.size < Number(count) && now() - last < 5000) await new Promise((r) => setTimeout(r, 50));
  const ms = now() - t0;
  await close();
  console.log(JSON.stringify({ delivered: seen.size, ms }));
}
`;

function scriptFile(): string {
  mkdirSync(dataRoot, { recursive: true });
  const file = join(dataRoot, 'watch-bench.mjs');
  writeFileSync(file, SCRIPT);
  return file;
}

function runChild<T>(file: string, side: Side, mode: string, root: string, count = 0, gapMs = 0): T {
  const res = spawnSync(process.execPath, [file, side, mode, root, String(count)], {
    encoding: 'utf8',
    env: { ...process.env, GAP_MS: String(gapMs) },
    timeout: 600_000,
  });
  if (res.status !== 0) throw new Error(`${side} ${mode} failed (${res.status}): ${res.stderr.slice(-800)}`);
  return JSON.parse(res.stdout.trim().split('\n').pop()!) as T;
}

function dataset(files: number): string {
  const root = join(dataRoot, `watch-${files}`);
  const marker = join(dataRoot, `watch-${files}.complete`);
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  process.stderr.write(`bench: generating ${files} files under ${root}...\n`);
  generateSmallFiles(root, { files, dirs: Math.max(1, Math.round(files / 50)), maxBytes: 256, seed: 7 });
  writeFileSync(marker, '');
  return root;
}

function freshDir(name: string): string {
  const dir = join(dataRoot, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

function measured(label: string, values: readonly number[], rssKiB?: number): Measured {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    label,
    medianMs: median,
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
    ...(rssKiB === undefined ? {} : { peakRssKiB: rssKiB }),
  };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function row(name: string, ours: Measured, peer: Measured, target: string): Comparison {
  return { name, ours, peer, ratio: ours.medianMs / peer.medianMs, target };
}

/** `@fsw/watch` against chokidar: latency, a burst, and start-up/memory on a large tree. */
export const watchBench: Benchmark = {
  name: 'watch',
  run: () => {
    const file = scriptFile();
    const rows: Comparison[] = [];

    // Write -> event latency: new files, one at a time.
    for (const gap of LATENCY_GAPS_MS) {
      const latency: Record<Side, { lat: number[]; lost: number }> = {
        fsw: runChild(file, 'fsw', 'latency', freshDir('watch-latency-fsw'), LATENCY_WRITES, gap),
        chokidar: runChild(
          file,
          'chokidar',
          'latency',
          freshDir('watch-latency-chokidar'),
          LATENCY_WRITES,
          gap,
        ),
      };
      for (const p of [50, 99]) {
        const label = (side: Side) => `${side} (${latency[side].lat.length}/${LATENCY_WRITES} delivered)`;
        rows.push(
          row(
            `write -> event latency p${p}, writes ${gap} ms apart`,
            measured(label('fsw'), [percentile(latency.fsw.lat, p)]),
            measured(label('chokidar'), [percentile(latency.chokidar.lat, p)]),
            'lower is better',
          ),
        );
      }
    }

    // A burst of BURST files created as fast as one process can: how many are delivered, and when.
    const burst: Record<Side, { delivered: number; ms: number }> = {
      fsw: runChild(file, 'fsw', 'burst', freshDir('watch-burst-fsw'), BURST),
      chokidar: runChild(file, 'chokidar', 'burst', freshDir('watch-burst-chokidar'), BURST),
    };
    rows.push(
      row(
        `${BURST}-file burst: events delivered, time to the last`,
        measured(`fsw (${burst.fsw.delivered}/${BURST} delivered)`, [burst.fsw.ms]),
        measured(`chokidar (${burst.chokidar.delivered}/${BURST} delivered)`, [burst.chokidar.ms]),
        'no lost events',
      ),
    );

    // Start-up until ready, and peak RSS, on a large tree; alternating runs. FSW_BENCH_WATCH_FILES=0 skips it.
    if (FILES <= 0) return rows;
    const tree = dataset(FILES);
    const samples: Record<Side, { ms: number; rssKiB: number }[]> = { fsw: [], chokidar: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const side of (i % 2 === 0 ? ['fsw', 'chokidar'] : ['chokidar', 'fsw']) as Side[]) {
        samples[side].push(runChild(file, side, 'startup', tree));
      }
    }
    const startup = (side: Side) =>
      measured(
        side,
        samples[side].map((s) => s.ms),
        Math.max(...samples[side].map((s) => s.rssKiB)),
      );
    rows.push(
      row(
        `start-up until ready, ${FILES} files`,
        startup('fsw'),
        startup('chokidar'),
        'ratio < 1, RSS below',
      ),
    );
    return rows;
  },
};
