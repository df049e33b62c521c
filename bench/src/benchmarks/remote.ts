import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_ROOT, FSW_BIN, fswOutput } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';
import { FswServe, RsyncDaemon, stopAll, syncDataset } from './sync-servers.js';

const fswBin = FSW_BIN;
// bench/dist/benchmarks/remote.js -> bench/.data
const dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_REMOTE_FILES` small files (default 200,000), `FSW_BENCH_REMOTE_PHOTOS` photo-like files
 * (default 8,000, ~5 GB; 0 skips that tree), `FSW_BENCH_REMOTE_RUNS` timed runs per side (default 3).
 */
const FILES = Number(process.env.FSW_BENCH_REMOTE_FILES ?? 200_000);
const PHOTOS = Number(process.env.FSW_BENCH_REMOTE_PHOTOS ?? 8_000);
const RUNS = Number(process.env.FSW_BENCH_REMOTE_RUNS ?? 3);

/** Appends a line to the first file found below `root`: one changed file per call. */
function touchOneFile(root: string): void {
  let dir = root;
  for (;;) {
    const entries = readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
    const file = entries.find((e) => e.isFile());
    if (file) {
      appendFileSync(join(dir, file.name), `changed ${Date.now()} ${Math.random()}\n`);
      return;
    }
    const sub = entries.find((e) => e.isDirectory());
    if (!sub) throw new Error(`no file under ${root}`);
    dir = join(dir, sub.name);
  }
}

function treeRows(label: string, source: string, work: string, serve: FswServe): Comparison[] {
  const rows: Comparison[] = [];
  const cache = join(work, 'cache');
  const pullCache = join(work, 'pull-cache');
  const env = { FSTREE_CACHE: cache, FSTREE_IGNORE: '', FSTREE_THREADS: '', FSW_TOKEN: '' };
  const pullEnv = { ...env, FSTREE_CACHE: pullCache };
  const remote = serve.grpcUrl;
  const rsyncDest = join(work, 'rsync-dest');
  const daemon = new RsyncDaemon(work, { push: rsyncDest, pull: source });
  const outOurs = join(work, 'out-fsw');
  const outPeer = join(work, 'out-rsync');
  const digestFile = join(work, 'digest');
  daemon.start();
  try {
    const pushOurs = {
      label: 'fsw write-tree-push DIR --remote jolt://',
      command: [process.execPath, fswBin, 'write-tree-push', source, '--remote', remote, '-q'],
      env,
    };
    const pushPeer = {
      label: 'rsync -a DIR/ rsync://…/push/',
      command: ['rsync', '-a', `${source}/`, daemon.url('push')],
    };
    rows.push(
      compare({
        name: `push, full (empty remote and cache), ${label}`,
        ours: pushOurs,
        peer: pushPeer,
        before: () => {
          serve.reset();
          rmSync(cache, { recursive: true, force: true });
          rmSync(join(source, '.fstree'), { recursive: true, force: true });
          rmSync(rsyncDest, { recursive: true, force: true });
          mkdirSync(rsyncDest, { recursive: true });
        },
        runs: RUNS,
        warmup: 0,
        target: 'ratio <= 1',
      }),
    );
    // Leave both sides in sync for the incremental runs.
    spawnSync('rsync', ['-a', `${source}/`, daemon.url('push')]);
    fswOutput(['write-tree-push', source, '--remote', remote, '-q'], env);
    rows.push(
      compare({
        name: `push, one file changed, ${label}`,
        ours: pushOurs,
        peer: pushPeer,
        before: () => touchOneFile(source),
        runs: RUNS,
        target: 'ratio <= 0.33',
      }),
    );
    rows.push(
      compare({
        name: `push, nothing changed, ${label}`,
        ours: pushOurs,
        peer: pushPeer,
        runs: RUNS,
        target: 'ratio <= 0.33',
      }),
    );

    writeFileSync(digestFile, fswOutput(['write-tree-push', source, '--remote', remote, '-q'], env));
    const pullOurs = {
      label: 'fsw pull-checkout DIGEST OUT --remote jolt://',
      command: `'${process.execPath}' '${fswBin}' pull-checkout "$(cat '${digestFile}')" '${outOurs}' --remote ${remote} -q -f`,
      env: pullEnv,
    };
    const pullPeer = {
      label: 'rsync -a rsync://…/pull/ OUT/',
      command: ['rsync', '-a', daemon.url('pull'), `${outPeer}/`],
    };
    rows.push(
      compare({
        name: `pull, full (empty cache and folder), ${label}`,
        ours: pullOurs,
        peer: pullPeer,
        before: () => {
          rmSync(pullCache, { recursive: true, force: true });
          rmSync(outOurs, { recursive: true, force: true });
          rmSync(outPeer, { recursive: true, force: true });
        },
        runs: RUNS,
        warmup: 0,
        target: 'ratio <= 1',
      }),
    );
    rows.push(
      compare({
        name: `pull, one file changed, ${label}`,
        ours: pullOurs,
        peer: pullPeer,
        // The source changes and is pushed (untimed); each side then fetches that one change.
        before: () => {
          touchOneFile(source);
          writeFileSync(digestFile, fswOutput(['write-tree-push', source, '--remote', remote, '-q'], env));
        },
        runs: RUNS,
        target: 'ratio <= 0.33',
      }),
    );
    rows.push(
      compare({
        name: `pull, nothing changed, ${label}`,
        ours: pullOurs,
        peer: pullPeer,
        runs: RUNS,
        target: 'ratio <= 0.33',
      }),
    );
  } finally {
    stopAll(daemon);
    rmSync(join(source, '.fstree'), { recursive: true, force: true });
  }
  return rows;
}

/**
 * Whole processes over loopback: `fsw write-tree-push` / `fsw pull-checkout` against `fsw serve` (gRPC), side by side
 * with `rsync -a` to and from an rsync daemon, for a full sync, one changed file, and nothing changed.
 */
export const remoteBenchmark: Benchmark = {
  name: 'remote',
  run: () => {
    if (!have('rsync')) {
      process.stderr.write('bench: rsync not installed, skipping the remote benchmark\n');
      return [];
    }
    const work = join(dataRoot, 'remote-work');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const serve = new FswServe(join(work, 'server'), join(work, 'serve.log'));
    serve.reset();
    const rows: Comparison[] = [];
    try {
      if (FILES > 0) {
        const sub = join(work, 'small');
        mkdirSync(sub, { recursive: true });
        rows.push(...treeRows(`${FILES} small files`, syncDataset('small', FILES), sub, serve));
      }
      if (PHOTOS > 0) {
        const sub = join(work, 'photos');
        mkdirSync(sub, { recursive: true });
        rows.push(...treeRows(`${PHOTOS} photo-like files`, syncDataset('photos', PHOTOS), sub, serve));
      }
    } finally {
      stopAll(serve);
      rmSync(work, { recursive: true, force: true });
    }
    return rows;
  },
};
