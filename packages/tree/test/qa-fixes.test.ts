import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkout, lsTree, openStore, writeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let tmp: string;
let src: string;
let store: ReturnType<typeof openStore>;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-qa-'));
  src = join(tmp, 'src');
  await mkdir(src);
  store = openStore(join(tmp, 'cache'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function names(digest: string): Promise<string[]> {
  return (await lsTree(digest, { store, recursive: true })).map((e) => e.path);
}

describe('a .fstree at the root that is not a real folder', () => {
  it('write-tree never writes the index through a .fstree symlink, and leaves the symlink out of the tree', async () => {
    const victim = join(tmp, 'victim');
    await mkdir(victim);
    await writeFile(join(victim, 'index'), 'precious');
    await writeFile(join(src, 'a'), 'a');
    await symlink('../victim', join(src, '.fstree'));
    // Without and with ignore rules (two scan paths).
    for (const rules of [false, true]) {
      if (rules) await writeFile(join(src, '.fstreeignore'), '*.log\n');
      const digest = await writeTree(src, { store });
      expect(await readFile(join(victim, 'index'), 'utf8')).toBe('precious');
      expect(await readlink(join(src, '.fstree'))).toBe('../victim');
      expect(await names(digest)).not.toContain('.fstree');
    }
    expect((await import('node:fs')).readdirSync(victim)).toEqual(['index']);
  });

  it('checkout never writes the index through a .fstree symlink', async () => {
    const victim = join(tmp, 'victim');
    await mkdir(victim);
    await writeFile(join(victim, 'index'), 'precious');
    await writeFile(join(src, 'a'), 'a');
    const digest = await writeTree(src, { store, index: false });
    const out = join(tmp, 'out');
    await mkdir(out);
    await symlink('../victim', join(out, '.fstree'));
    await checkout(digest, out, { store, force: true });
    expect(await readFile(join(out, 'a'), 'utf8')).toBe('a');
    expect(await readFile(join(victim, 'index'), 'utf8')).toBe('precious');
    expect((await import('node:fs')).readdirSync(victim)).toEqual(['index']);
  });

  it('write-tree over a .fstree file succeeds, keeps the file as it is and leaves it out; checkout accepts the tree', async () => {
    await writeFile(join(src, 'a'), 'a');
    await writeFile(join(src, '.fstree'), 'my notes');
    const digest = await writeTree(src, { store });
    expect(await names(digest)).toEqual(['a']);
    expect(await readFile(join(src, '.fstree'), 'utf8')).toBe('my notes');
    // Again, now that a run has happened (no index could be saved: it re-hashes, same digest).
    expect(await writeTree(src, { store })).toBe(digest);
    const out = join(tmp, 'out');
    await checkout(digest, out, { store });
    expect(await readFile(join(out, 'a'), 'utf8')).toBe('a');
    expect((await lstat(join(out, '.fstree'))).isDirectory()).toBe(true);
  });

  it('a root .fstree symlink to nowhere is left out and not replaced', async () => {
    await writeFile(join(src, 'a'), 'a');
    await symlink('nowhere', join(src, '.fstree'));
    const digest = await writeTree(src, { store });
    expect(await names(digest)).toEqual(['a']);
    expect(await readlink(join(src, '.fstree'))).toBe('nowhere');
    await checkout(digest, join(tmp, 'out'), { store });
  });

  it('still keeps a .fstree file below the root', async () => {
    await mkdir(join(src, 'sub'));
    await writeFile(join(src, 'sub', '.fstree'), 'x');
    expect(await names(await writeTree(src, { store }))).toEqual(['sub', 'sub/.fstree']);
  });
});
