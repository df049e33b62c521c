import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TreeError } from '@fsw/errors';
import { checkout, diffTrees, lsTree, openStore, readTree, writeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIR_755, rawTree } from './helpers.js';

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

describe('a digest that names a file object, read as a tree', () => {
  it('ls-tree, readTree, checkout and diff say it is a file object (E_INVALID_ARGUMENT), not a corrupt tree', async () => {
    await writeFile(join(src, 'a'), 'a');
    const tree = await writeTree(src, { store, index: false });
    const file = await store.put(Buffer.from('just some text'));
    const verifying = openStore(store.dir, { verify: true });
    for (const read of [
      () => readTree(file, { store }),
      () => lsTree(file, { store }),
      () => lsTree(file, { store: verifying }),
      () => checkout(file, join(tmp, 'out'), { store }),
      () => checkout(file, join(tmp, 'out'), { store: verifying }),
      () => diffTrees(file, tree, { store }),
      () => diffTrees(tree, file, { store }),
    ]) {
      const e = await caught(read());
      expect(TreeError.is(e)).toBe(true);
      expect(e).toMatchObject({
        code: 'E_INVALID_ARGUMENT',
        message: `${file} is a file object, not a tree`,
        path: store.path(file, 'file'),
      });
    }
  });

  it('a tree whose folder entry names a file object is refused as corrupt, saying so', async () => {
    const file = await store.put(Buffer.from('not a tree'));
    const tree = await store.put(rawTree([{ name: 'd', digest: file, status: DIR_755 }]), 'tree');
    for (const read of [
      () => lsTree(tree, { store, recursive: true }),
      () => checkout(tree, join(tmp, 'out'), { store }),
    ]) {
      const e = await caught(read());
      expect(e).toMatchObject({
        code: 'E_CORRUPT',
        message: `${file} (d) of tree ${tree} is a file object, not a tree`,
      });
    }
  });
});

describe('a missing or corrupt object below a tree is named by its path in the tree', () => {
  async function fixture() {
    await mkdir(join(src, 'd', 'e'), { recursive: true });
    await writeFile(join(src, 'd', 'c'), 'c');
    await writeFile(join(src, 'd', 'e', 'f'), 'f');
    const root = await writeTree(src, { store, index: false });
    const byPath = new Map((await lsTree(root, { store, recursive: true })).map((e) => [e.path, e.digest]));
    return { root, c: byPath.get('d/c')!, e: byPath.get('d/e')!, other: join(tmp, 'other') };
  }

  it('checkout names the file whose object is missing', async () => {
    const { root, c } = await fixture();
    await rm(store.path(c, 'file'));
    const e = await caught(checkout(root, join(tmp, 'out'), { store }));
    expect(e).toMatchObject({
      code: 'E_MISSING_OBJECT',
      message: `object ${c} (d/c) of tree ${root} is not in the store ${store.dir}`,
    });
  });

  it('ls-tree -r, checkout and diff name the subtree that is missing', async () => {
    const { root, e: sub } = await fixture();
    await rm(store.path(sub, 'tree'));
    await writeFile(join(src, 'd', 'e', 'g'), 'g');
    const changed = await writeTree(src, { store, index: false });
    const verifying = openStore(store.dir, { verify: true });
    for (const read of [
      () => lsTree(root, { store, recursive: true }),
      () => checkout(root, join(tmp, 'out'), { store }),
      () => checkout(root, join(tmp, 'out'), { store: verifying }),
      () => diffTrees(root, changed, { store }),
    ]) {
      const e = await caught(read());
      expect(e).toMatchObject({
        code: 'E_MISSING_OBJECT',
        message: `tree ${sub} (d/e) of tree ${root} is not in the store ${store.dir}`,
      });
    }
  });

  it('ls-tree -r, checkout and diff name the subtree that does not parse', async () => {
    const { root, e: sub } = await fixture();
    await writeFile(join(src, 'd', 'e', 'g'), 'g');
    const changed = await writeTree(src, { store, index: false });
    await rm(store.path(sub, 'tree'));
    await writeFile(store.path(sub, 'tree'), 'not a tree');
    for (const read of [
      () => lsTree(root, { store, recursive: true }),
      () => checkout(root, join(tmp, 'out'), { store }),
      () => diffTrees(changed, root, { store }),
    ]) {
      const e = await caught(read());
      expect(e).toMatchObject({
        code: 'E_CORRUPT',
        message: expect.stringMatching(
          new RegExp(`^tree ${sub} \\(d/e\\) of tree ${root}: corrupt tree object: bad magic`),
        ),
      });
    }
  });
});
