import { mkdirSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TreeError } from '@fsw/errors';
import { checkout, hashTree, openStore, verifyTree, writeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let tmp: string;
let store: ReturnType<typeof openStore>;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-checkout-removals-'));
  store = openStore(join(tmp, 'cache'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function refused(promise: Promise<unknown>): Promise<TreeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(TreeError.is(error), `expected E_NOT_EMPTY, got ${String(error)}`).toBe(true);
  expect((error as TreeError).code).toBe('E_NOT_EMPTY');
  return error as TreeError;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Writes `files` (relative path → content) below a fresh folder and returns its tree. */
async function treeOf(name: string, files: Record<string, string>, into = store): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), content);
  }
  return writeTree(dir, { store: into, index: false });
}

describe('checkout keeps what fsw did not write below folders it removes', () => {
  it('refuses to replace a folder it wrote by a file when an untracked non-empty folder is inside', async () => {
    const t1 = await treeOf('t1', { 'data/tracked': '1', other: 'old' });
    const t2 = await treeOf('t2', { data: '2', other: 'new' });
    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    await mkdir(join(out, 'data', 'mywork'));
    await writeFile(join(out, 'data', 'mywork', 'ch1.txt'), 'thesis');

    const error = await refused(checkout(t2, out, { store }));
    expect(error.message).toContain(join(out, 'data', 'mywork'));
    // Refused before writing anything.
    expect(await readFile(join(out, 'data', 'mywork', 'ch1.txt'), 'utf8')).toBe('thesis');
    expect(await readFile(join(out, 'data', 'tracked'), 'utf8')).toBe('1');
    expect(await readFile(join(out, 'other'), 'utf8')).toBe('old');

    await checkout(t2, out, { store, force: true });
    expect(await hashTree(out)).toBe(t2);
  });

  it('refuses to replace a folder it wrote by a file when ignored paths are inside', async () => {
    const ignore = 'node_modules/\n';
    const t1 = await treeOf('i1', { '.fstreeignore': ignore, 'sub/a': 'a' });
    const t3 = await treeOf('i3', { '.fstreeignore': ignore, sub: 'f' });
    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    await mkdir(join(out, 'sub', 'node_modules', 'pkg'), { recursive: true });
    await writeFile(join(out, 'sub', 'node_modules', 'pkg', 'index.js'), 'dep');

    const error = await refused(checkout(t3, out, { store }));
    expect(error.message).toContain(join(out, 'sub', 'node_modules'));
    expect(error.message).toContain('ignored');
    expect(await readFile(join(out, 'sub', 'node_modules', 'pkg', 'index.js'), 'utf8')).toBe('dep');
    expect(await readFile(join(out, 'sub', 'a'), 'utf8')).toBe('a');

    await checkout(t3, out, { store, force: true });
    expect(await readFile(join(out, 'sub'), 'utf8')).toBe('f');
  });

  it('refuses to drop a folder it wrote that holds an untracked non-empty folder, at any depth', async () => {
    const t1 = await treeOf('d1', { 'keep/k': 'k', 'gone/x/tracked': 'x', '.fstreeignore': '*.log\n' });
    const t2 = await treeOf('d2', { 'keep/k': 'k', '.fstreeignore': '*.log\n' });
    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    await mkdir(join(out, 'gone', 'x', 'mine'));
    await writeFile(join(out, 'gone', 'x', 'mine', 'work.txt'), 'mine');

    const error = await refused(checkout(t2, out, { store }));
    expect(error.message).toContain(join(out, 'gone', 'x', 'mine'));
    expect(await readFile(join(out, 'gone', 'x', 'mine', 'work.txt'), 'utf8')).toBe('mine');
    expect(await exists(join(out, 'gone', 'x', 'tracked'))).toBe(true);

    // Without it, the folder goes; ignored paths in it stay (and keep it), untracked files go.
    await rm(join(out, 'gone', 'x', 'mine'), { recursive: true });
    await writeFile(join(out, 'gone', 'x', 'debug.log'), 'log');
    await writeFile(join(out, 'gone', 'stray'), 'stray');
    await checkout(t2, out, { store });
    expect(await exists(join(out, 'gone', 'x', 'tracked'))).toBe(false);
    expect(await exists(join(out, 'gone', 'stray'))).toBe(false);
    expect(await readFile(join(out, 'gone', 'x', 'debug.log'), 'utf8')).toBe('log');
  });

  it('drops such a folder with force', async () => {
    const t1 = await treeOf('d1', { 'gone/tracked': 'x' });
    const t2 = await treeOf('d2', { k: 'k' });
    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    await mkdir(join(out, 'gone', 'mine'));
    await writeFile(join(out, 'gone', 'mine', 'work.txt'), 'mine');
    await checkout(t2, out, { store, force: true });
    expect(await hashTree(out)).toBe(t2);
  });
});

describe('checkout into a folder holding its own store', () => {
  it('leaves the store alone: never removed, never untracked, with or without force', async () => {
    const dir = join(tmp, 'c');
    await mkdir(dir);
    for (const i of [1, 2, 3]) await writeFile(join(dir, `f${i}`), `${i}`);
    const inside = openStore(join(dir, '.cache'));
    const t = await writeTree(dir, { store: inside });
    const objects = async () => (await readdir(join(dir, '.cache', 'objects'), { recursive: true })).sort();
    const before = await objects();
    expect(before.length).toBeGreaterThan(0);
    expect(await verifyTree(dir, t, { store: inside })).toMatchObject({ equal: true, added: [] });

    await writeFile(join(dir, 'f1'), 'changed');
    await checkout(t, dir, { store: inside, force: true });
    expect(await readFile(join(dir, 'f1'), 'utf8')).toBe('1');
    expect(await objects()).toEqual(before);

    await writeFile(join(dir, 'f2'), 'changed');
    await checkout(t, dir, { store: inside });
    expect(await readFile(join(dir, 'f2'), 'utf8')).toBe('2');
    expect(await objects()).toEqual(before);
    expect(await verifyTree(dir, t, { store: inside })).toMatchObject({ equal: true, added: [] });

    // Nor when the folder holding the store is one the tree drops (it stays, holding only the store).
    const deep = join(tmp, 'deep');
    await mkdir(join(deep, 'var'), { recursive: true });
    await writeFile(join(deep, 'var', 'a'), 'a');
    const deepStore = openStore(join(deep, 'var', '.cache'));
    const t1 = await writeTree(deep, { store: deepStore });
    const t2 = await treeOf('other', { b: 'b' }, deepStore);
    const deepObjects = (await readdir(join(deep, 'var', '.cache', 'objects'), { recursive: true })).sort();
    await checkout(t2, deep, { store: deepStore });
    expect(await readFile(join(deep, 'b'), 'utf8')).toBe('b');
    expect(await exists(join(deep, 'var', 'a'))).toBe(false);
    expect((await readdir(join(deep, 'var', '.cache', 'objects'), { recursive: true })).sort()).toEqual(
      deepObjects,
    );
    await checkout(t1, deep, { store: deepStore, force: true });
    await checkout(t2, deep, { store: deepStore, force: true });
    expect((await readdir(join(deep, 'var', '.cache', 'objects'), { recursive: true })).sort()).toEqual(
      deepObjects,
    );
  });

  it('refuses a tree with an entry where the store is, even with force', async () => {
    const dir = join(tmp, 'd');
    await mkdir(dir);
    const inside = openStore(join(dir, '.cache'));
    const src = join(tmp, 'src');
    await mkdir(join(src, '.cache'), { recursive: true });
    await writeFile(join(src, '.cache', 'x'), 'x');
    const t = await writeTree(src, { store: inside, index: false });
    const before = (await readdir(join(dir, '.cache', 'objects'), { recursive: true })).sort();
    const error = await checkout(t, dir, { store: inside, force: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(TreeError.is(error) && error.code).toBe('E_INVALID_ARGUMENT');
    expect((await readdir(join(dir, '.cache', 'objects'), { recursive: true })).sort()).toEqual(before);
  });
});

describe('checkout removes names that are not valid UTF-8', () => {
  const bad = (dir: string, ...names: string[]) =>
    Buffer.concat([Buffer.from(`${dir}/`), ...names.map((n) => Buffer.from(n, 'latin1'))]);

  it('in a folder the tree keeps', async () => {
    const t = await treeOf('n', { 'sub/ok': 'ok' });
    const out = join(tmp, 'out');
    await checkout(t, out, { store });
    writeFileSync(bad(join(out, 'sub'), 'bad\xff\xfe.txt'), 'user');
    expect(await readdir(join(out, 'sub'))).toHaveLength(2);
    await expect(checkout(t, out, { store })).resolves.toMatchObject({ removed: 1 });
    expect(await readdir(join(out, 'sub'))).toEqual(['ok']);
    expect(await hashTree(out)).toBe(t);
  });

  it('in a folder the tree drops: every entry goes, not only those listed before it', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`sub/f${i}`] = `${i}`;
    const t1 = await treeOf('n1', files);
    const t2 = await treeOf('n2', { top: 'top' });
    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    writeFileSync(bad(join(out, 'sub'), 'bad\xff\xfe.txt'), 'user');
    writeFileSync(bad(join(out, 'sub'), 'other\xe9'), 'user');
    await checkout(t2, out, { force: true, store });
    expect(await exists(join(out, 'sub'))).toBe(false);
    expect(await hashTree(out)).toBe(t2);
  });

  it('refuses a non-empty folder so named without force, removes it with force', async () => {
    const t = await treeOf('n', { 'sub/ok': 'ok' });
    const out = join(tmp, 'out');
    await checkout(t, out, { store });
    mkdirSync(bad(join(out, 'sub'), 'dir\xff'));
    writeFileSync(Buffer.concat([bad(join(out, 'sub'), 'dir\xff'), Buffer.from('/work')]), 'mine');
    await refused(checkout(t, out, { store }));
    expect(await readdir(join(out, 'sub'))).toHaveLength(2);
    await checkout(t, out, { store, force: true });
    expect(await readdir(join(out, 'sub'))).toEqual(['ok']);
    expect(await hashTree(out)).toBe(t);
  });
});

describe('checkout cut short', () => {
  const temps = async (dir: string) =>
    (await readdir(dir, { recursive: true })).filter((p) => p.split('/').pop()!.startsWith('.fsw-tmp'));

  it('aborted by its signal (worker threads writing), leaves no temp file, and the rerun needs no force', async () => {
    const files: Record<string, string> = {};
    for (let d = 0; d < 6; d++) for (let i = 0; i < 60; i++) files[`d${d}/f${i}`] = `${d}/${i}`.repeat(i);
    const t = await treeOf('src', files);
    const out = join(tmp, 'out');
    const reason = new Error('interrupted');
    const controller = new AbortController();
    await expect(
      checkout(t, out, {
        store,
        workers: 2,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.filesDone > 0) controller.abort(reason);
        },
      }),
    ).rejects.toBe(reason);
    expect(await temps(out)).toEqual([]);
    expect(await hashTree(out)).not.toBe(t);
    await checkout(t, out, { store });
    expect(await hashTree(out)).toBe(t);
  });

  it('killed: its leftover temp files are recognised as fsw’s and removed without force', async () => {
    const t = await treeOf('src', { 'sub/a': 'a', b: 'b' });
    const out = join(tmp, 'out');
    // As a checkout killed before saving its index leaves a new folder: some files, temp files beside them.
    await mkdir(join(out, 'sub'), { recursive: true });
    await writeFile(join(out, 'sub', 'a'), 'a');
    await writeFile(join(out, 'sub', '.fsw-tmp-4242-1a2b3c4d-17'), 'half-writ');
    await writeFile(join(out, '.fsw-tmp-4242-1a2b3c4d-18'), '');
    await symlink('b', join(out, '.fsw-tmp-4242-1a2b3c4d-19'));
    await checkout(t, out, { store });
    expect(await temps(out)).toEqual([]);
    expect(await hashTree(out)).toBe(t);

    // A name only like fsw's is not taken for one.
    const out2 = join(tmp, 'out2');
    await mkdir(out2);
    await writeFile(join(out2, '.fsw-tmp-mine'), 'mine');
    await refused(checkout(t, out2, { store }));
  });
});

describe('checkout over a .fstree that is not a real folder', () => {
  it('does not take an index reached through a .fstree symlink as its own: the folder is not pruned without force', async () => {
    const t = await treeOf('src', { a: 'a' });
    const elsewhere = join(tmp, 'elsewhere');
    await checkout(t, elsewhere, { store });
    const dir = join(tmp, 'dir');
    await mkdir(dir);
    await writeFile(join(dir, 'mine.txt'), 'mine');
    await symlink(join(elsewhere, '.fstree'), join(dir, '.fstree'));
    await refused(checkout(t, dir, { store }));
    expect(await readFile(join(dir, 'mine.txt'), 'utf8')).toBe('mine');
  });
});
