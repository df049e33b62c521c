import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TreeError } from '@fsw/errors';
import { openStore, writeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let tmp: string;
let src: string;
let store: ReturnType<typeof openStore>;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-errpaths-'));
  src = join(tmp, 'src');
  await mkdir(src);
  store = openStore(join(tmp, 'cache'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('write-tree with an index, into a store path that runs through a file', () => {
  it('fails with a TreeError naming the store object and the cause, not a raw ENOTDIR', async () => {
    await writeFile(join(src, 'a'), 'a');
    await writeTree(src, { store });
    const file = join(tmp, 'somefile');
    await writeFile(file, 'x');
    const e = await caught(writeTree(src, { store: openStore(file) }));
    expect(TreeError.is(e)).toBe(true);
    const err = e as TreeError;
    expect(err.code).toBe('E_NOT_DIR');
    expect(err.path?.startsWith(join(file, 'objects'))).toBe(true);
    expect(err.message).toContain(join(file, 'objects'));
    expect(err.message).toContain('not a directory');
    expect((err.cause as { code?: string }).code).toBe('ENOTDIR');
  });
});
