import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import * as realFs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copy, type IncompleteCopyError, move } from '@fsw/copy';
import { CopyError } from '@fsw/errors';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTree, readTree, tempDir, tempFiles } from './helpers.js';

/**
 * After `budget` successful copies, the next ones write part of the file and fail with ENOSPC, as a full disk does.
 * Small files go through `copyFileSync` (node:fs), large ones through `copyFile` (node:fs/promises).
 */
const disk = vi.hoisted(() => ({ budget: Number.POSITIVE_INFINITY }));

function noSpace(src: unknown, dest: unknown): Error {
  return Object.assign(
    new Error(`ENOSPC: no space left on device, copyfile '${String(src)}' -> '${String(dest)}'`),
    {
      code: 'ENOSPC',
      syscall: 'copyfile',
    },
  );
}

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const copyFileSync: typeof fs.copyFileSync = (src, dest, mode) => {
    if (disk.budget <= 0) {
      fs.writeFileSync(dest as string, 'partial');
      throw noSpace(src, dest);
    }
    disk.budget--;
    fs.copyFileSync(src, dest, mode);
  };
  return { ...fs, copyFileSync, default: { ...fs, copyFileSync } };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const copyFile: typeof fs.copyFile = async (src, dest, mode) => {
    if (disk.budget <= 0) {
      await fs.writeFile(dest as string, 'partial');
      throw noSpace(src, dest);
    }
    disk.budget--;
    return fs.copyFile(src, dest, mode);
  };
  return { ...fs, copyFile, default: { ...fs, copyFile } };
});

/** True when a tmpfs can be mounted here: then failures.test.ts tests ENOSPC for real and this file is not needed. */
function canMount(): boolean {
  if (process.env.FSW_TEST_NO_MOUNT === '1') return false;
  const dir = join(tmpdir(), `fsw-copy-probe-${process.pid}`);
  spawnSync('mkdir', ['-p', dir]);
  const ok =
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' }).status === 0;
  if (ok) spawnSync('umount', [dir], { stdio: 'ignore' });
  spawnSync('rmdir', [dir]);
  return ok;
}

function shmDiffers(): boolean {
  try {
    return statSync('/dev/shm').dev !== statSync(tmpdir()).dev;
  } catch {
    return false;
  }
}

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  disk.budget = Number.POSITIVE_INFINITY;
});
afterEach(async () => {
  await cleanup();
});

// The fallback for machines that cannot mount a small tmpfs (no root): ENOSPC injected into fs.copyFile.
describe.skipIf(canMount())('no space left (injected ENOSPC: mounting a tmpfs is not possible here)', () => {
  it('copy: E_NO_SPACE, completed work reported, partial file removed', async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 6; i++) files[`f${i}`] = 3000;
    await makeTree(join(dir, 'src'), files);
    disk.budget = 3;
    const err = (await copy(join(dir, 'src'), join(dir, 'dst'), { concurrency: 1 }).catch(
      (e: unknown) => e,
    )) as IncompleteCopyError;
    expect(CopyError.is(err) && err.code).toBe('E_NO_SPACE');
    const copied = await readTree(join(dir, 'dst'));
    expect(copied.size).toBe(3);
    expect(err.completed).toMatchObject({ files: 3, bytes: 9000 });
    expect(await tempFiles(join(dir, 'dst'))).toEqual([]);
  });

  // Needs /dev/shm on another filesystem than the temp dir, so that the move copies.
  it.skipIf(!shmDiffers())('move: sources whose copy failed are kept', async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 6; i++) files[`f${i}`] = 3000;
    await makeTree(join(dir, 'src'), files);
    const shm = await realFs.mkdtemp('/dev/shm/fsw-copy-');
    try {
      disk.budget = 2;
      const err = (await move(join(dir, 'src'), join(shm, 'dst'), { concurrency: 1 }).catch(
        (e: unknown) => e,
      )) as IncompleteCopyError;
      expect(err.code).toBe('E_NO_SPACE');
      expect((await readTree(join(shm, 'dst'))).size).toBe(2);
      expect((await readTree(join(dir, 'src'))).size).toBe(4);
    } finally {
      await realFs.rm(shm, { recursive: true, force: true });
    }
  });
});
