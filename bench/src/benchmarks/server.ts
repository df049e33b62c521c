import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DATA_ROOT, FSW_BIN, fswOutput, generateSmallFiles } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

const _require = createRequire(import.meta.url);
const fswBin = FSW_BIN;
const dataRoot = DATA_ROOT;

/**
 * Scale: `FSW_BENCH_SERVER_FILES` small files (default 200,000, the same tree as the `tree` benchmark, reused when it
 * exists), `FSW_BENCH_SERVER_RUNS` timed runs per side (default 5).
 */
const FILES = Number(process.env.FSW_BENCH_SERVER_FILES ?? 200_000);
const DIRS = Math.max(1, Math.round(FILES / 50));
const RUNS = Number(process.env.FSW_BENCH_SERVER_RUNS ?? 5);

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

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Waits (synchronously: the harness's `before` hooks are synchronous) until `test` holds. */
function waitFor(what: string, test: () => boolean, timeoutMs = 60_000): void {
  const end = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    sleepSync(20);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function stop(child: ChildProcess | undefined): void {
  if (!child?.pid) return;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  // Synchronous wait for the process to go away (the event loop does not run here, so nothing reaps the child:
  // an exited child stays a zombie, state Z).
  const stat = `/proc/${child.pid}/stat`;
  waitFor('a process to stop', () => {
    try {
      return /^\d+ \(.*\) Z/.test(readFileSync(stat, 'utf8'));
    } catch {
      return true;
    }
  });
}

/** `fsw serve` on fixed ports (so that the commands timed can name them), started fresh on `dir`. */
function startFswServe(dir: string, grpcPort: number, httpPort: number, log: string): ChildProcess {
  const fd = openSync(log, 'w');
  const child = spawn(
    process.execPath,
    [
      fswBin,
      'serve',
      '--dir',
      dir,
      '--grpc-port',
      String(grpcPort),
      '--http-port',
      String(httpPort),
      '--max-size',
      '1TiB',
    ],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  waitFor('fsw serve to listen', () => /^store /m.test(readFileSync(log, 'utf8')) || !alive(child));
  if (!alive(child)) throw new Error(`bench: fsw serve failed: ${readFileSync(log, 'utf8')}`);
  return child;
}

function startRsyncDaemon(work: string, port: number): ChildProcess {
  const module = join(work, 'rsync-module');
  mkdirSync(module, { recursive: true });
  const conf = join(work, 'rsyncd.conf');
  writeFileSync(
    conf,
    `use chroot = no\npid file = ${join(work, 'rsyncd.pid')}\n[bench]\n  path = ${module}\n  read only = no\n  uid = ${process.getuid?.() ?? 0}\n  gid = ${process.getgid?.() ?? 0}\n`,
  );
  const child = spawn(
    'rsync',
    ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'],
    {
      stdio: 'ignore',
    },
  );
  waitFor(
    'the rsync daemon',
    () => spawnSync('rsync', [`rsync://127.0.0.1:${port}/`], { stdio: 'ignore' }).status === 0,
  );
  return child;
}

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
    const root = dataset();
    const work = join(dataRoot, 'server-work');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const local = join(work, 'local');
    const env = { FSTREE_CACHE: local, FSTREE_IGNORE: '', FSTREE_THREADS: '', FSW_TOKEN: '' };
    const [grpcPort, httpPort, rsyncPort] = [await freePort(), await freePort(), await freePort()];
    const jolt = `jolt://127.0.0.1:${grpcPort}`;
    const http = `http://127.0.0.1:${httpPort}`;
    const rsyncUrl = `rsync://127.0.0.1:${rsyncPort}/bench`;
    const serverDir = join(work, 'server');
    const log = join(work, 'serve.log');
    rmSync(join(root, '.fstree'), { recursive: true, force: true });
    const digest = fswOutput(['write-tree', root], env);

    let server: ChildProcess | undefined;
    const rsyncd = startRsyncDaemon(work, rsyncPort);
    const freshServer = () => {
      stop(server);
      rmSync(serverDir, { recursive: true, force: true });
      server = startFswServe(serverDir, grpcPort, httpPort, log);
    };
    const freshRsyncTarget = () => {
      rmSync(join(work, 'rsync-module', 'tree'), { recursive: true, force: true });
    };
    const rows: Comparison[] = [];
    const rsyncPush = {
      label: 'rsync -a DIR/ rsync://…/tree/',
      command: ['rsync', '-a', `${root}/`, `${rsyncUrl}/tree/`],
    };
    try {
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
      spawnSync('rsync', ['-a', `${root}/`, `${rsyncUrl}/tree/`]);
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
            command: ['rsync', '-a', `${rsyncUrl}/tree/`, `${rsyncOut}/`],
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
      // Each step on its own: a failure to stop one process must not leave the other running.
      for (const child of [server, rsyncd]) {
        try {
          stop(child);
        } catch {
          child?.kill('SIGKILL');
        }
      }
      rmSync(work, { recursive: true, force: true });
      rmSync(join(root, '.fstree'), { recursive: true, force: true });
    }
    return rows;
  },
};
