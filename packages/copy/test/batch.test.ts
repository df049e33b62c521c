import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type CopyProgress, copy, type IncompleteCopyError, move } from '@fsw/copy';
import { CopyError } from '@fsw/errors';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BatchMessage, BatchReply, WorkerInit } from '../dist/internal/protocol.js';
import { bytes, tempDir, tempFiles } from './helpers.js';

// The small-file paths: blocking calls on the main thread in slices, and worker threads fed batches.
// FSW_COPY_WORKERS forces the number of worker threads (0: main thread only), whatever the core count.

let dir: string;
let cleanup: () => Promise<void>;
const savedWorkers = process.env.FSW_COPY_WORKERS;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  if (savedWorkers === undefined) delete process.env.FSW_COPY_WORKERS;
  else process.env.FSW_COPY_WORKERS = savedWorkers;
  await cleanup();
});

/** The content of every file below root, as relative path -> sha1, read synchronously (thousands of files). */
function readTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    out.set(path.slice(root.length + 1), createHash('sha1').update(readFileSync(path)).digest('hex'));
  }
  return out;
}

/** `count` small files in 10 folders (enough for the worker path), written synchronously to keep the test fast. */
function smallTree(root: string, count: number): { files: string[]; bytes: number } {
  const files: string[] = [];
  let total = 0;
  for (let d = 0; d < 10; d++) mkdirSync(join(root, `d${d}`), { recursive: true });
  for (let i = 0; i < count; i++) {
    const rel = `d${i % 10}/f${i}`;
    const size = (i * 37) % 700;
    writeFileSync(join(root, rel), bytes(size, i + 1));
    files.push(rel);
    total += size;
  }
  return { files, bytes: total };
}

describe.each(['0', '1'])('small files with FSW_COPY_WORKERS=%s', (workers) => {
  beforeEach(() => {
    process.env.FSW_COPY_WORKERS = workers;
  });

  it('copies every file identically and reports exact progress totals', async () => {
    const src = join(dir, 'src');
    const tree = smallTree(src, 2500);
    const progress: CopyProgress[] = [];
    const result = await copy(src, join(dir, 'dst'), {
      progressIntervalMs: 0,
      onProgress: (p) => progress.push(p),
    });
    expect(result).toMatchObject({ files: 2500, bytes: tree.bytes, dirs: 11, errors: 0 });
    expect(readTree(join(dir, 'dst'))).toEqual(readTree(src));
    expect(await tempFiles(join(dir, 'dst'))).toEqual([]);
    for (const p of progress) expect(p).toMatchObject({ totalFiles: 2500, totalBytes: tree.bytes });
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.filesCompleted).toBeGreaterThanOrEqual(progress[i - 1]!.filesCompleted);
    }
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.at(-1)).toMatchObject({ filesCompleted: 2500, bytesCopied: tree.bytes });
  });

  it('a failure mid-batch goes to onError and the rest of the batch is copied', async () => {
    const src = join(dir, 'src');
    const tree = smallTree(src, 2500);
    // A FIFO makes the plan call onError; the sources removed then fail during the copy (ENOENT), at the front of
    // the queue (worker batches), in the middle and at the back (main-thread slices).
    spawnSync('mkfifo', [join(src, 'fifo')]);
    const gone = [tree.files[3]!, tree.files[4]!, tree.files[1250]!, tree.files[2497]!];
    const seen: CopyError[] = [];
    const result = await copy(src, join(dir, 'dst'), {
      onError: (error) => {
        if (error.code === 'E_NOT_FILE') for (const rel of gone) unlinkSync(join(src, rel));
        seen.push(error);
        return 'skip';
      },
    });
    expect(seen.map((e) => e.code).sort()).toEqual(['E_NOT_FILE', ...gone.map(() => 'E_NOT_FOUND')].sort());
    expect(
      seen
        .filter((e) => e.code === 'E_NOT_FOUND')
        .map((e) => e.path)
        .sort(),
    ).toEqual(gone.map((rel) => join(src, rel)).sort());
    expect(result).toMatchObject({ files: 2500 - gone.length, errors: 1 + gone.length });
    const copied = readTree(join(dir, 'dst'));
    expect(copied).toEqual(readTree(src));
    expect(copied.size).toBe(2500 - gone.length);
    expect(await tempFiles(join(dir, 'dst'))).toEqual([]);
  });

  it('moves file by file into an existing directory, and across filesystems (copy, verify, remove)', async () => {
    const src = join(dir, 'src');
    smallTree(src, 2500);
    const before = readTree(src);
    // An existing destination: no rename of the whole tree, every file is renamed (or linked) on its own.
    mkdirSync(join(dir, 'dst', 'src'), { recursive: true });
    expect(await move(src, join(dir, 'dst'))).toMatchObject({ files: 2500, errors: 0 });
    expect(readTree(join(dir, 'dst', 'src'))).toEqual(before);
    expect(existsSync(src)).toBe(false);
    if (statSync('/dev/shm', { throwIfNoEntry: false })?.dev === statSync(dir).dev) return;
    const shm = mkdtempSync('/dev/shm/fsw-copy-');
    try {
      expect(await move(join(dir, 'dst', 'src'), join(shm, 'moved'))).toMatchObject({ files: 2500 });
      expect(readTree(join(shm, 'moved'))).toEqual(before);
      expect(existsSync(join(dir, 'dst', 'src'))).toBe(false);
      expect(await tempFiles(join(shm, 'moved'))).toEqual([]);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });

  it('an abort mid-run rejects with the reason and leaves only complete files, no temp file', async () => {
    const src = join(dir, 'src');
    smallTree(src, 3000);
    const controller = new AbortController();
    const reason = new Error('stop here');
    const promise = copy(src, join(dir, 'dst'), {
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (p.filesCompleted >= 300) controller.abort(reason);
      },
    });
    await expect(promise).rejects.toBe(reason);
    const copied = readTree(join(dir, 'dst'));
    const sources = readTree(src);
    expect(copied.size).toBeGreaterThanOrEqual(300);
    expect(copied.size).toBeLessThan(3000);
    for (const [rel, sum] of copied) expect(sum, rel).toBe(sources.get(rel));
    expect(await tempFiles(join(dir, 'dst'))).toEqual([]);
  });
});

describe('the copy worker thread', () => {
  const url = new URL('../dist/internal/copy-worker.js', import.meta.url);

  async function runBatch(init: WorkerInit, batch: BatchMessage): Promise<BatchReply> {
    const worker = new Worker(url, { workerData: init });
    try {
      return await new Promise<BatchReply>((resolve, reject) => {
        worker.on('error', reject);
        worker.on('message', (m: BatchReply | 'ready') => {
          if (m === 'ready') worker.postMessage(batch);
          else resolve(m);
        });
      });
    } finally {
      await worker.terminate();
    }
  }

  const config = {
    move: false,
    overwrite: 'error',
    preserveMode: true,
    preserveTimes: true,
    reflink: 'auto',
    fsync: false,
    verifyContent: false,
    umask: 0,
    token: 'abcd0001',
  } as const;

  function batchOf(names: string[]): BatchMessage {
    const numbers = new Float64Array(names.length * 3);
    for (let i = 0; i < names.length; i++) {
      numbers[3 * i] = 5;
      numbers[3 * i + 1] = 0o100644;
      numbers[3 * i + 2] = Date.UTC(2020, 1, 3);
    }
    return {
      src: names.map((n) => join(dir, 'src', n)),
      dest: names.map((n) => join(dir, 'dst', n)),
      numbers,
      flags: new Uint8Array(names.length),
    };
  }

  it('stops at the first failure and answers what it did, with the error as data', async () => {
    mkdirSync(join(dir, 'src'));
    mkdirSync(join(dir, 'dst'));
    for (const n of ['a', 'c']) writeFileSync(join(dir, 'src', n), 'hello');
    const reply = await runBatch(
      { config, stop: new Int32Array(new SharedArrayBuffer(4)) },
      batchOf(['a', 'b', 'c']),
    );
    expect(reply.ran).toBe(2);
    expect([...reply.placed]).toEqual([1, 0]);
    expect(reply.error).toMatchObject({ copy: false, code: 'ENOENT', path: join(dir, 'src', 'b') });
    expect(existsSync(join(dir, 'dst', 'a'))).toBe(true);
    expect(existsSync(join(dir, 'dst', 'c'))).toBe(false);
    expect(await tempFiles(join(dir, 'dst'))).toEqual([]);
  });

  it('does nothing once the stop flag is set', async () => {
    mkdirSync(join(dir, 'src'));
    mkdirSync(join(dir, 'dst'));
    writeFileSync(join(dir, 'src', 'a'), 'hello');
    const stop = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(stop, 0, 1);
    const reply = await runBatch({ config, stop }, batchOf(['a']));
    expect(reply.ran).toBe(0);
    expect(existsSync(join(dir, 'dst', 'a'))).toBe(false);
  });
});

// ENOSPC for real in the worker path: a tmpfs with few inodes fills after some hundred files.
const mnt = mkdtempSync(join(tmpdir(), 'fsw-copy-inodes-'));
const mounted =
  process.env.FSW_TEST_NO_MOUNT !== '1' &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,nr_inodes=400', 'tmpfs', mnt], { stdio: 'ignore' })
    .status === 0;
afterAll(() => {
  if (mounted) spawnSync('umount', [mnt], { stdio: 'ignore' });
  rmSync(mnt, { recursive: true, force: true });
});

describe.skipIf(!mounted)('no space left in the worker path (tmpfs without free inodes)', () => {
  it('E_NO_SPACE stops the run; what completed is reported and complete; no temp file', async () => {
    process.env.FSW_COPY_WORKERS = '1';
    const src = join(dir, 'src');
    smallTree(src, 2500);
    const err = (await copy(src, join(mnt, 'dst')).catch((e: unknown) => e)) as IncompleteCopyError;
    expect(CopyError.is(err) && err.code).toBe('E_NO_SPACE');
    const copied = readTree(join(mnt, 'dst'));
    const sources = readTree(src);
    for (const [rel, sum] of copied) expect(sum, rel).toBe(sources.get(rel));
    expect(err.completed.files).toBe(copied.size);
    expect(copied.size).toBeGreaterThan(100);
    expect(await tempFiles(join(mnt, 'dst'))).toEqual([]);
  });
});
