import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DATA_ROOT, FSW_BIN, fswOutput, generatePhotoLibrary, generateSmallFiles } from '../dataset.js';
import { type Comparison, compare, have } from '../harness.js';
import type { Benchmark } from '../run.js';

const _require = createRequire(import.meta.url);
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

function freePort(): number {
  // A synchronous way to ask the OS for a free port: a child process binds port 0 and prints it.
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})",
    ],
    { encoding: 'utf8' },
  );
  return Number(r.stdout.trim());
}

function waitForPort(port: number, timeoutMs = 30_000): void {
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `const net=require('net');const end=Date.now()+${timeoutMs};(function t(){const s=net.connect(${port},'127.0.0.1');s.on('connect',()=>{s.end();process.exit(0)});s.on('error',()=>{if(Date.now()>end)process.exit(1);setTimeout(t,50)})})()`,
    ],
    { stdio: 'ignore' },
  );
  if (r.status !== 0) throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** `fsw serve` in the background over `dir`; restarting gives an empty server when `dir` was wiped. */
class Serve {
  private child: ChildProcess | undefined;
  readonly grpcPort = freePort();
  readonly httpPort = freePort();
  constructor(readonly dir: string) {}
  start(): void {
    this.child = spawn(
      process.execPath,
      [
        fswBin,
        'serve',
        '--dir',
        this.dir,
        '--host',
        '127.0.0.1',
        '--grpc-port',
        String(this.grpcPort),
        '--http-port',
        String(this.httpPort),
        '--max-size',
        '1000GiB',
      ],
      { stdio: 'ignore' },
    );
    waitForPort(this.grpcPort);
    waitForPort(this.httpPort);
  }
  stop(): void {
    if (this.child?.pid === undefined) return;
    this.child.kill('SIGTERM');
    // Wait (synchronously: the event loop cannot reap it now) until it exits, i.e. is gone or a zombie, so that its
    // ports are free for the next start.
    const pid = this.child.pid;
    spawnSync('bash', [
      '-c',
      `for i in $(seq 600); do s=$(awk '{print $3}' /proc/${pid}/stat 2>/dev/null) || break; [ "$s" = Z ] && break; sleep 0.05; done`,
    ]);
    this.child = undefined;
  }
  /** Stops, empties the store, starts again. */
  reset(): void {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    this.start();
  }
}

/** An rsync daemon on loopback with two modules: `push` (a destination) and `pull` (serving `source`). */
class RsyncDaemon {
  private child: ChildProcess | undefined;
  readonly port = freePort();
  constructor(
    readonly work: string,
    readonly pushDir: string,
    readonly source: string,
  ) {}
  start(): void {
    mkdirSync(this.pushDir, { recursive: true });
    const conf = join(this.work, 'rsyncd.conf');
    writeFileSync(
      conf,
      [
        `pid file = ${join(this.work, 'rsyncd.pid')}`,
        'use chroot = no',
        // A daemon started by root would otherwise drop to `nobody` and could not write the destination.
        `uid = ${process.getuid?.() ?? 0}`,
        `gid = ${process.getgid?.() ?? 0}`,
        'read only = no',
        'numeric ids = yes',
        '[push]',
        `  path = ${this.pushDir}`,
        '[pull]',
        `  path = ${this.source}`,
        '',
      ].join('\n'),
    );
    this.child = spawn(
      'rsync',
      ['--daemon', '--no-detach', `--port=${this.port}`, `--config=${conf}`, '--address=127.0.0.1'],
      {
        stdio: 'ignore',
      },
    );
    waitForPort(this.port);
  }
  stop(): void {
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }
  url(module: 'push' | 'pull'): string {
    return `rsync://127.0.0.1:${this.port}/${module}/`;
  }
}

function dataset(kind: 'small' | 'photos', count: number): string {
  const root = join(dataRoot, `remote-${kind}-${count}`);
  const marker = `${root}.complete`;
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  process.stderr.write(`bench: generating ${count} ${kind} files under ${root}...\n`);
  if (kind === 'small')
    generateSmallFiles(root, { files: count, dirs: Math.max(1, Math.round(count / 50)), seed: 9 });
  else generatePhotoLibrary(root, { files: count, seed: 10 });
  writeFileSync(marker, '');
  return root;
}

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

function treeRows(label: string, source: string, work: string, serve: Serve): Comparison[] {
  const rows: Comparison[] = [];
  const cache = join(work, 'cache');
  const pullCache = join(work, 'pull-cache');
  const env = { FSTREE_CACHE: cache, FSTREE_IGNORE: '', FSTREE_THREADS: '', FSW_TOKEN: '' };
  const pullEnv = { ...env, FSTREE_CACHE: pullCache };
  const remote = `jolt://127.0.0.1:${serve.grpcPort}`;
  const rsyncDest = join(work, 'rsync-dest');
  const daemon = new RsyncDaemon(work, rsyncDest, source);
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
    daemon.stop();
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
    const serve = new Serve(join(work, 'server'));
    serve.reset();
    const rows: Comparison[] = [];
    try {
      if (FILES > 0) {
        const sub = join(work, 'small');
        mkdirSync(sub, { recursive: true });
        rows.push(...treeRows(`${FILES} small files`, dataset('small', FILES), sub, serve));
      }
      if (PHOTOS > 0) {
        const sub = join(work, 'photos');
        mkdirSync(sub, { recursive: true });
        rows.push(...treeRows(`${PHOTOS} photo-like files`, dataset('photos', PHOTOS), sub, serve));
      }
    } finally {
      serve.stop();
      rmSync(work, { recursive: true, force: true });
    }
    return rows;
  },
};
