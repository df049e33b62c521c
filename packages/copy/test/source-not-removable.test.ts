import { spawnSync } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { move } from '@fsw/copy';
import { CopyError } from '@fsw/errors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listAll, makeTree, tempDir, tempFiles } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

/** Bind-mounts `from` read-only on `to`; false where mounting is not allowed (not root). */
function mountReadOnly(from: string, to: string): boolean {
  if (spawnSync('mount', ['--bind', from, to], { stdio: 'ignore' }).status !== 0) return false;
  if (spawnSync('mount', ['-o', 'remount,bind,ro', to], { stdio: 'ignore' }).status === 0) return true;
  spawnSync('umount', [to], { stdio: 'ignore' });
  return false;
}

const canMount = (() => {
  const probe = spawnSync('mktemp', ['-d'], { encoding: 'utf8' }).stdout.trim();
  const ok = probe !== '' && mountReadOnly(probe, probe);
  if (ok) spawnSync('umount', [probe], { stdio: 'ignore' });
  spawnSync('rmdir', [probe], { stdio: 'ignore' });
  return ok;
})();

// A move from a read-only bind mount: another mount, so EXDEV, then copy, place, and the source's unlink fails
// with EROFS. The copy is complete at the destination: the error must say so and name the source.
describe.skipIf(!canMount)(
  'move whose source cannot be removed after its copy (read-only bind mount)',
  () => {
    for (const [what, size] of [
      ['small file', 2],
      ['large file', 8 * 1024 * 1024],
    ] as const) {
      it(`a ${what}: names the source, says the copy is in place, keeps both`, async () => {
        await makeTree(join(dir, 'rw'), { f: size });
        await mkdir(join(dir, 'ro'));
        await mkdir(join(dir, 'out'));
        expect(mountReadOnly(join(dir, 'rw'), join(dir, 'ro'))).toBe(true);
        try {
          const err = await move(join(dir, 'ro/f'), `${join(dir, 'out')}/`).catch((e: unknown) => e);
          expect(CopyError.is(err)).toBe(true);
          expect(err).toMatchObject({
            code: 'E_PERMISSION',
            path: join(dir, 'ro/f'),
            message: `copied to ${join(dir, 'out/f')}, but cannot remove the source ${join(dir, 'ro/f')}: read-only file system (EROFS); the file is now in both places`,
          });
          const [copied, source] = await Promise.all([
            readFile(join(dir, 'out/f')),
            readFile(join(dir, 'ro/f')),
          ]);
          expect(copied.length).toBe(size);
          expect(copied.equals(source)).toBe(true);
          expect(await tempFiles(join(dir, 'out'))).toEqual([]);
        } finally {
          spawnSync('umount', [join(dir, 'ro')], { stdio: 'ignore' });
        }
        expect(await listAll(join(dir, 'rw'))).toEqual(['f']);
      });
    }
  },
);
