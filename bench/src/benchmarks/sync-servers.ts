import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedDataset, FSW_BIN, generatePhotoLibrary, generateSmallFiles } from '../dataset.js';

// The servers the `remote` and `server` benchmarks sync against: `fsw serve` and an rsync daemon, both on loopback.
// Everything here is synchronous: the harness's `before` hooks are.

/**
 * The trees both benchmarks sync, generated once: `count` small files (0-4 KiB, 50 per folder) or photo-like files.
 */
export function syncDataset(kind: 'small' | 'photos', count: number): string {
  return cachedDataset(`remote-${kind}-${count}`, (root) => {
    if (kind === 'small')
      generateSmallFiles(root, { files: count, dirs: Math.max(1, Math.round(count / 50)), seed: 9 });
    else generatePhotoLibrary(root, { files: count, seed: 10 });
  });
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Waits until `test` holds, or throws after `timeoutMs`. */
function waitFor(what: string, test: () => boolean, timeoutMs = 60_000): void {
  const end = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    sleepSync(20);
  }
}

/** A port free on 127.0.0.1 right now: a child process binds port 0 and prints what it got. */
export function freePort(): number {
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})",
    ],
    { encoding: 'utf8' },
  );
  const port = Number(r.stdout.trim());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`bench: no free port (${r.stderr})`);
  return port;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Sends SIGTERM and waits until the process is gone or a zombie (nothing reaps it while we block here), so that its
 * ports are free again; SIGKILL when it does not stop in time.
 */
function stopProcess(child: ChildProcess | undefined): void {
  if (child?.pid === undefined) return;
  const stat = `/proc/${child.pid}/stat`;
  const gone = () => {
    try {
      return /^\d+ \(.*\) Z/.test(readFileSync(stat, 'utf8'));
    } catch {
      return true;
    }
  };
  try {
    child.kill('SIGTERM');
    waitFor('a process to stop', gone, 30_000);
  } catch {
    child.kill('SIGKILL');
  }
}

/** `fsw serve` in the background over `dir` (gRPC and HTTP on ports picked once, so commands can name them). */
export class FswServe {
  private child: ChildProcess | undefined;
  readonly grpcPort = freePort();
  readonly httpPort = freePort();
  constructor(
    readonly dir: string,
    private readonly log: string,
  ) {}

  /** `jolt://127.0.0.1:PORT` */
  get grpcUrl(): string {
    return `jolt://127.0.0.1:${this.grpcPort}`;
  }

  /** `http://127.0.0.1:PORT` */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** Starts the server and waits until it listens (its `store …` line). @throws when it exits first */
  start(): void {
    mkdirSync(this.dir, { recursive: true });
    const fd = openSync(this.log, 'w');
    const args = ['serve', '--dir', this.dir, '--host', '127.0.0.1', '--max-size', '1000GiB'];
    args.push('--grpc-port', String(this.grpcPort), '--http-port', String(this.httpPort));
    const child = spawn(process.execPath, [FSW_BIN, ...args], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.child = child;
    waitFor('fsw serve to listen', () => /^store /m.test(readFileSync(this.log, 'utf8')) || !alive(child));
    if (!alive(child)) throw new Error(`bench: fsw serve failed: ${readFileSync(this.log, 'utf8')}`);
  }

  stop(): void {
    stopProcess(this.child);
    this.child = undefined;
  }

  /** Stops, empties the store, starts again: an empty server. */
  reset(): void {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
    this.start();
  }
}

/** An rsync daemon on 127.0.0.1 serving `modules` (name -> folder), writable, as the current user. */
export class RsyncDaemon {
  private child: ChildProcess | undefined;
  readonly port = freePort();
  constructor(
    private readonly work: string,
    private readonly modules: Readonly<Record<string, string>>,
  ) {}

  start(): void {
    const conf = join(this.work, 'rsyncd.conf');
    const lines = [
      `pid file = ${join(this.work, 'rsyncd.pid')}`,
      'use chroot = no',
      // A daemon started by root would otherwise drop to `nobody` and could not write the destination.
      `uid = ${process.getuid?.() ?? 0}`,
      `gid = ${process.getgid?.() ?? 0}`,
      'read only = no',
      'numeric ids = yes',
    ];
    for (const [name, path] of Object.entries(this.modules)) {
      mkdirSync(path, { recursive: true });
      lines.push(`[${name}]`, `  path = ${path}`);
    }
    writeFileSync(conf, `${lines.join('\n')}\n`);
    const args = [
      '--daemon',
      '--no-detach',
      `--port=${this.port}`,
      `--config=${conf}`,
      '--address=127.0.0.1',
    ];
    this.child = spawn('rsync', args, { stdio: 'ignore' });
    waitFor(
      'the rsync daemon',
      () => spawnSync('rsync', [`rsync://127.0.0.1:${this.port}/`], { stdio: 'ignore' }).status === 0,
    );
  }

  stop(): void {
    stopProcess(this.child);
    this.child = undefined;
  }

  /** `rsync://127.0.0.1:PORT/MODULE/` */
  url(module: string): string {
    return `rsync://127.0.0.1:${this.port}/${module}/`;
  }
}

/** Stops each server on its own: a failure to stop one must not leave the others running. */
export function stopAll(...servers: readonly (FswServe | RsyncDaemon | undefined)[]): void {
  for (const s of servers) {
    try {
      s?.stop();
    } catch {
      // stopProcess already fell back to SIGKILL.
    }
  }
}
