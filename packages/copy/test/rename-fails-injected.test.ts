import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { move } from '@fsw/copy';
import { CopyError } from '@fsw/errors';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { listAll, makeTree, tempDir } from './helpers.js';

/**
 * rename() of a directory named `busy` fails with EBUSY, as it does for a mount point (failures.test.ts mounts one
 * for real where it may): a failure that is neither EXDEV nor a destination that appeared.
 */
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const rename: typeof fs.rename = async (from, to) => {
    if (String(from).endsWith('/busy')) {
      throw Object.assign(new Error(`EBUSY: resource busy or locked, rename '${String(from)}'`), {
        code: 'EBUSY',
        syscall: 'rename',
      });
    }
    return fs.rename(from, to);
  };
  return { ...fs, rename, default: { ...fs, rename } };
});

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

describe('move of a directory whose rename fails with neither EXDEV nor a conflict (injected EBUSY)', () => {
  it('reports that source and moves nothing of it, like mv; the other sources move', async () => {
    await makeTree(dir, { 'busy/a': 'a', 'busy/sub/b': 'b', 'other/c': 'c' });
    await mkdir(join(dir, 'dst'));
    const errors: CopyError[] = [];
    const r = await move([join(dir, 'busy'), join(dir, 'other')], join(dir, 'dst'), {
      onError: (e) => {
        errors.push(e);
        return 'skip';
      },
    });
    expect(errors.map((e) => e.path)).toEqual([join(dir, 'busy')]);
    expect(r).toMatchObject({ files: 1, errors: 1 });
    expect(await listAll(join(dir, 'busy'))).toEqual(['a', 'sub', 'sub/b']);
    expect(await listAll(join(dir, 'dst'))).toEqual(['other', 'other/c']);

    const err = await move(join(dir, 'busy'), join(dir, 'dst2')).catch((e: unknown) => e);
    expect(CopyError.is(err)).toBe(true);
    expect(await listAll(join(dir, 'busy'))).toEqual(['a', 'sub', 'sub/b']);
    expect(await listAll(dir)).not.toContain('dst2');
  });
});
