import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readdir, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CopyProgress, copy, type IncompleteCopyError, move } from '@fsw/copy';
import { CopyError } from '@fsw/errors';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listAll, makeTree, readTree, tempDir, tempFiles } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

async function expectCompleteCopies(src: string | Map<string, string>, dst: string): Promise<string[]> {
  // Every file present at the destination is whole: same bytes as its source.
  const copied = await readTree(dst);
  const sources = typeof src === 'string' ? await readTree(src) : src;
  for (const [rel, sum] of copied) expect(sum, rel).toBe(sources.get(rel));
  expect(await tempFiles(dst)).toEqual([]);
  return [...copied.keys()];
}

describe('abort', () => {
  it('mid-copy rejects with signal.reason and leaves no temp file and no truncated file', async () => {
    const src = join(dir, 'src');
    const files: Record<string, number> = { 'big.bin': 64 * 1024 * 1024 };
    for (let i = 0; i < 40; i++) files[`small/f${i}`] = 1000 + i;
    await makeTree(src, files);
    const controller = new AbortController();
    const reason = new Error('user stop');
    let abortedAt: CopyProgress | undefined;
    const promise = copy(src, join(dir, 'dst'), {
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (abortedAt === undefined && p.currentFile?.endsWith('big.bin') && p.bytesCopied > 0) {
          abortedAt = p;
          controller.abort(reason);
        }
      },
    });
    await expect(promise).rejects.toBe(reason);
    expect(abortedAt).toBeDefined();
    expect(abortedAt!.bytesCopied).toBeLessThan(abortedAt!.totalBytes);
    const present = await expectCompleteCopies(src, join(dir, 'dst'));
    expect(present).not.toContain('big.bin');
  });

  it('with an already aborted signal writes nothing', async () => {
    await makeTree(join(dir, 'src'), { a: 10 });
    const reason = new Error('before');
    await expect(
      copy(join(dir, 'src'), join(dir, 'dst'), { signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    expect(await listAll(dir)).toEqual(['src', 'src/a']);
  });

  it('a move aborted mid-way keeps every source whose move did not complete', async () => {
    const src = join(dir, 'src');
    const files: Record<string, number> = {};
    for (let i = 0; i < 60; i++) files[`f${i}`] = 5000;
    await makeTree(src, files);
    const before = await readTree(src);
    const controller = new AbortController();
    const shm = await shmDir();
    if (shm === undefined) return;
    try {
      await expect(
        move(src, join(shm, 'dst'), {
          signal: controller.signal,
          concurrency: 2,
          progressIntervalMs: 0,
          onProgress: (p) => {
            if (p.filesCompleted >= 10) controller.abort(new Error('enough'));
          },
        }),
      ).rejects.toThrow('enough');
      const moved = await readTree(join(shm, 'dst'));
      const kept = await readTree(src);
      expect(moved.size).toBeGreaterThanOrEqual(10);
      expect(moved.size + kept.size).toBe(before.size);
      for (const [rel, sum] of [...moved, ...kept]) expect(sum).toBe(before.get(rel));
      expect(await tempFiles(join(shm, 'dst'))).toEqual([]);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});

/** A fresh dir on /dev/shm when that is another filesystem than the temp dir, else undefined. */
async function shmDir(): Promise<string | undefined> {
  try {
    const [a, b] = await Promise.all([stat('/dev/shm'), stat(dir)]);
    if (a.dev === b.dev) return undefined;
    return await mkdtemp('/dev/shm/fsw-copy-');
  } catch {
    return undefined;
  }
}

const shmAvailable = await (async () => {
  try {
    const [a, b] = await Promise.all([stat('/dev/shm'), stat(tmpdir())]);
    return a.dev !== b.dev;
  } catch {
    return false;
  }
})();

// Needs a second filesystem: /dev/shm (tmpfs) on a device other than the temp dir's.
describe.skipIf(!shmAvailable)('move across filesystems (EXDEV, /dev/shm)', () => {
  let shm: string;
  beforeEach(async () => {
    shm = await mkdtemp('/dev/shm/fsw-copy-');
  });
  afterEach(async () => {
    await rm(shm, { recursive: true, force: true });
  });

  it('copies, verifies, then removes the sources (files, a large file, symlinks, directories)', async () => {
    const src = join(dir, 'src');
    await makeTree(src, { 'a.txt': 'a', 'deep/b.bin': 70_000, 'large.bin': 10 * 1024 * 1024 });
    await symlink('a.txt', join(src, 'link'));
    const before = await readTree(src);
    for (const verify of ['size', 'content'] as const) {
      const r = await move(src, join(shm, `moved-${verify}`), { verify });
      expect(r).toMatchObject({ files: 4, errors: 0 });
      expect(await readTree(join(shm, `moved-${verify}`))).toEqual(before);
      await expect(stat(src)).rejects.toMatchObject({ code: 'ENOENT' });
      // Move it back for the second round (across devices again).
      await move(join(shm, `moved-${verify}`), src);
      expect(await readTree(src)).toEqual(before);
    }
  });

  it('moving entry by entry, reports a FIFO below the source (E_NOT_FILE) and keeps it there', async () => {
    await makeTree(join(dir, 'src'), { z: 'z' });
    spawnSync('mkfifo', [join(dir, 'src/p')]);
    const errors: CopyError[] = [];
    const r = await move(join(dir, 'src'), join(shm, 'moved'), {
      onError: (e) => {
        errors.push(e);
        return 'skip';
      },
    });
    expect(errors.map((e) => [e.code, e.path])).toEqual([['E_NOT_FILE', join(dir, 'src/p')]]);
    expect(r).toMatchObject({ files: 1, errors: 1 });
    expect(await listAll(join(shm, 'moved'))).toEqual(['z']);
    expect(await listAll(join(dir, 'src'))).toEqual(['p']);
  });

  it('keeps a source that changes while it is copied (E_CHANGED) and leaves no partial copy', async () => {
    const src = join(dir, 'src');
    // Large enough that the copy is seen under way (progress polls the copy's size).
    await makeTree(src, { 'large.bin': 64 * 1024 * 1024 });
    let touched = false;
    const err = await move(join(src, 'large.bin'), join(shm, 'large.bin'), {
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (!touched && p.bytesCopied > 0 && p.bytesCopied < p.totalBytes) {
          touched = true;
          void appendFile(join(src, 'large.bin'), 'more');
        }
      },
    }).catch((e: unknown) => e);
    expect(touched).toBe(true);
    expect(CopyError.is(err) && err.code).toBe('E_CHANGED');
    expect((await stat(join(src, 'large.bin'))).size).toBe(64 * 1024 * 1024 + 4);
    expect(await readdir(shm)).toEqual([]);
  });
});

// ENOSPC for real on a 1 MiB tmpfs; where mounting is not allowed, enospc-injected.test.ts runs instead.
const small = await mkdtemp(join(tmpdir(), 'fsw-copy-mnt-'));
const mounted =
  process.env.FSW_TEST_NO_MOUNT !== '1' &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { stdio: 'ignore' }).status === 0;

afterAll(async () => {
  if (mounted) spawnSync('umount', [small], { stdio: 'ignore' });
  await rm(small, { recursive: true, force: true });
});

describe.skipIf(!mounted)('no space left (real ENOSPC on a 1 MiB tmpfs)', () => {
  afterEach(async () => {
    for (const name of await readdir(small)) await rm(join(small, name), { recursive: true, force: true });
  });

  it('copy: E_NO_SPACE naming the file, completed work reported, partial file removed', async () => {
    const src = join(dir, 'src');
    const files: Record<string, number> = {};
    for (let i = 0; i < 6; i++) files[`f${i}`] = 300 * 1024;
    await makeTree(src, files);
    const progress: CopyProgress[] = [];
    const err = (await copy(src, join(small, 'dst'), {
      concurrency: 1,
      onProgress: (p) => progress.push(p),
    }).catch((e: unknown) => e)) as IncompleteCopyError;
    expect(CopyError.is(err)).toBe(true);
    expect(err.code).toBe('E_NO_SPACE');
    expect(err.path?.startsWith(join(small, 'dst'))).toBe(true);
    expect(err.message).toMatch(/no space left on device/);
    const present = await expectCompleteCopies(src, join(small, 'dst'));
    expect(present.length).toBeGreaterThanOrEqual(1);
    expect(present.length).toBeLessThan(6);
    expect(err.completed).toMatchObject({ files: present.length, bytes: present.length * 300 * 1024 });
    expect(progress.at(-1)).toMatchObject({
      filesCompleted: present.length,
      bytesCopied: present.length * 300 * 1024,
    });
  });

  it('copy: a large (streamed) file that does not fit leaves nothing behind', async () => {
    await makeTree(dir, { 'large.bin': 10 * 1024 * 1024 });
    const err = await copy(join(dir, 'large.bin'), join(small, 'large.bin')).catch((e: unknown) => e);
    expect(CopyError.is(err) && err.code).toBe('E_NO_SPACE');
    expect(await readdir(small)).toEqual([]);
  });

  it('move failing mid-way keeps the sources of everything not moved', async () => {
    const src = join(dir, 'src');
    const files: Record<string, number> = {};
    for (let i = 0; i < 6; i++) files[`sub/f${i}`] = 300 * 1024;
    await makeTree(src, files);
    const before = await readTree(src);
    const err = (await move(src, join(small, 'dst'), { concurrency: 1 }).catch(
      (e: unknown) => e,
    )) as IncompleteCopyError;
    expect(err.code).toBe('E_NO_SPACE');
    const moved = await expectCompleteCopies(before, join(small, 'dst'));
    const kept = await readTree(src);
    expect(moved.length).toBe(err.completed.files);
    expect(moved.length).toBeGreaterThanOrEqual(1);
    // Nothing lost, nothing duplicated: every file is in exactly one place, with its bytes.
    expect(moved.length + kept.size).toBe(6);
    for (const rel of moved) expect(kept.has(rel)).toBe(false);
    const movedSums = await readTree(join(small, 'dst'));
    for (const [rel, sum] of [...movedSums, ...kept]) expect(sum).toBe(before.get(rel));
  });
});

// A mount point cannot be renamed (EBUSY): mv reports it and moves nothing. Needs root to mount a tmpfs.
describe.skipIf(!mounted)('move of a directory whose rename fails with neither EXDEV nor a conflict', () => {
  it('reports the source and moves nothing of it (not file by file after reporting a failure)', async () => {
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status).toBe(0);
    try {
      await makeTree(mnt, { a: 'a', 'sub/b': 'b' });
      await makeTree(dir, { 'other/c': 'c' });
      const errors: CopyError[] = [];
      await mkdir(join(dir, 'dst'));
      const moved = await move([mnt, join(dir, 'other')], join(dir, 'dst'), {
        onError: (e) => {
          errors.push(e);
          return 'skip';
        },
      });
      expect(errors.map((e) => e.path)).toEqual([mnt]);
      expect(errors[0]?.message).toMatch(/EBUSY/);
      expect(moved).toMatchObject({ files: 1, errors: 1 });
      expect(await listAll(mnt)).toEqual(['a', 'sub', 'sub/b']);
      expect(await listAll(join(dir, 'dst'))).toEqual(['other', 'other/c']);
      // Under the default onError: rejected, and still nothing of it moved.
      const err = await move(mnt, join(dir, 'dst2')).catch((e: unknown) => e);
      expect(CopyError.is(err)).toBe(true);
      expect(await listAll(mnt)).toEqual(['a', 'sub', 'sub/b']);
      await expect(stat(join(dir, 'dst2'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      spawnSync('umount', [mnt], { stdio: 'ignore' });
    }
  });
});
