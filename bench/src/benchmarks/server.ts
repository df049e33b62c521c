import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_ROOT, FSW_BIN, fswOutput } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';
import { FswServe, RsyncDaemon, stopAll, syncDataset } from './sync-servers.js';

const fswBin = FSW_BIN;
const dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_SERVER_FILES` small files (default 200,000: the `remote` benchmark's tree, reused when it exists),
 * `FSW_BENCH_SERVER_RUNS` timed runs per side (default 5).
 */
const FILES = Number(process.env.FSW_BENCH_SERVER_FILES ?? 200_000);
const RUNS = Number(process.env.FSW_BENCH_SERVER_RUNS ?? 5);

/**
 * `fsw serve` under the sync workloads of the issue, against an rsync daemon on loopback (whole processes): a full
 * push of the small-file tree into an empty server (gRPC and HTTP), a push with nothing changed, a push after one file
 * changed, and a full pull into an empty folder.
 */
export const serverBenchmark: Benchmark = {
  name: 'server',
  run: async () => {
    if (!have('rsync')) {
      process.stderr.write('bench: rsync not installed, skipping the server benchmark\n');
      return [];
    }
    const root = syncDataset('small', FILES);
    const work = join(dataRoot, 'server-work');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const local = join(work, 'local');
    const env = { FSTREE_CACHE: local, FSTREE_IGNORE: '', FSTREE_THREADS: '', FSW_TOKEN: '' };
    const server = new FswServe(join(work, 'server'), join(work, 'serve.log'));
    const rsyncModule = join(work, 'rsync-module');
    const rsyncd = new RsyncDaemon(work, { bench: rsyncModule });
    const jolt = server.grpcUrl;
    const http = server.httpUrl;
    const rsyncUrl = rsyncd.url('bench');
    rmSync(join(root, '.fstree'), { recursive: true, force: true });
    const digest = fswOutput(['write-tree', root], env);
    const freshServer = () => server.reset();
    const freshRsyncTarget = () => {
      rmSync(join(rsyncModule, 'tree'), { recursive: true, force: true });
    };
    const rows: Comparison[] = [];
    const rsyncPush = {
      label: 'rsync -a DIR/ rsync://…/tree/',
      command: ['rsync', '-a', `${root}/`, `${rsyncUrl}tree/`],
    };
    try {
      rsyncd.start();
      for (const [protocol, url] of [
        ['gRPC', jolt],
        ['HTTP', http],
      ] as const) {
        rows.push(
          compare({
            name: `push ${FILES} files into an empty server (${protocol})`,
            ours: {
              label: `fsw push DIGEST --remote ${url.split(':')[0]}://…`,
              command: [process.execPath, fswBin, 'push', digest, '--remote', url],
              env,
            },
            peer: rsyncPush,
            before: () => {
              freshServer();
              freshRsyncTarget();
            },
            runs: RUNS,
            warmup: 0,
            target: 'ratio <= 1',
          }),
        );
      }
      // From here on, one server holding the whole tree and an rsync target holding the whole tree.
      freshServer();
      fswOutput(['push', digest, '--remote', jolt], env);
      freshRsyncTarget();
      spawnSync('rsync', ['-a', `${root}/`, `${rsyncUrl}tree/`]);
      rows.push(
        compare({
          name: `push with nothing changed, ${FILES} files (gRPC)`,
          ours: {
            label: 'fsw write-tree-push DIR',
            command: [process.execPath, fswBin, 'write-tree-push', root, '--remote', jolt],
            env,
          },
          peer: rsyncPush,
          runs: RUNS,
          target: 'ratio <= 0.33',
        }),
      );
      let edit = 0;
      const changed = join(root, 'd0', 'sub0', 'f0.dat');
      const original = readFileSync(changed);
      rows.push(
        compare({
          name: `push after changing one file, ${FILES} files (gRPC)`,
          ours: {
            label: 'fsw write-tree-push DIR',
            command: [process.execPath, fswBin, 'write-tree-push', root, '--remote', jolt],
            env,
          },
          peer: rsyncPush,
          before: () => writeFileSync(changed, `edit ${++edit}\n`),
          runs: RUNS,
          target: 'ratio <= 0.33',
        }),
      );
      writeFileSync(changed, original);
      fswOutput(['write-tree-push', root, '--remote', jolt], env);
      const pullStore = join(work, 'pull-store');
      const pullOut = join(work, 'pull-out');
      const rsyncOut = join(work, 'rsync-out');
      rows.push(
        compare({
          name: `pull ${FILES} files into an empty folder (gRPC)`,
          ours: {
            label: 'fsw pull-checkout DIGEST OUT',
            command: [process.execPath, fswBin, 'pull-checkout', digest, pullOut, '--remote', jolt],
            env: { ...env, FSTREE_CACHE: pullStore },
          },
          peer: {
            label: 'rsync -a rsync://…/tree/ OUT/',
            command: ['rsync', '-a', `${rsyncUrl}tree/`, `${rsyncOut}/`],
          },
          before: () => {
            for (const d of [pullStore, pullOut, rsyncOut]) rmSync(d, { recursive: true, force: true });
          },
          runs: RUNS,
          warmup: 0,
          target: 'ratio <= 1',
        }),
      );
    } finally {
      stopAll(server, rsyncd);
      rmSync(work, { recursive: true, force: true });
      rmSync(join(root, '.fstree'), { recursive: true, force: true });
    }
    return rows;
  },
};
