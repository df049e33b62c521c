import { spawn } from 'node:child_process';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
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

/** Sets every object file of the store (and, with `folders`, its folders too, as `find -exec touch` does) back. */
async function backdate(cache: string, ageMs: number, folders: boolean): Promise<void> {
  const when = new Date(Date.now() - ageMs);
  const objects = join(cache, 'objects');
  for (const fan of await readdir(objects)) {
    for (const name of await readdir(join(objects, fan))) await utimes(join(objects, fan, name), when, when);
    if (folders) await utimes(join(objects, fan), when, when);
  }
}

async function objectMtimes(cache: string): Promise<number[]> {
  const out: number[] = [];
  const objects = join(cache, 'objects');
  for (const fan of await readdir(objects)) {
    for (const name of await readdir(join(objects, fan)))
      out.push((await stat(join(objects, fan, name))).mtimeMs);
  }
  return out;
}

describe('write-tree with the index marks every object of the tree it returns as used', () => {
  beforeEach(async () => {
    await mkdir(join(src, 'sub', 'deeper'), { recursive: true });
    await writeFile(join(src, 'a'), 'a');
    await writeFile(join(src, 'sub', 'b'), 'b');
    await writeFile(join(src, 'sub', 'deeper', 'c'), 'c');
  });

  it('once its record of their use is older than touchAfterMs: eviction right after keeps the whole tree', async () => {
    const cache = join(tmp, 'cache');
    const fast = openStore(cache, { touchAfterMs: 300 });
    const first = await writeTree(src, { store: fast });
    await sleep(400);
    await backdate(cache, 2 * 3_600_000, false);
    expect(await writeTree(src, { store: fast })).toBe(first);
    const result = await fast.evict({ maxBytes: 0 });
    expect(result.removed).toBe(0);
    expect((await lsTree(first, { store: fast, recursive: true })).map((e) => e.path)).toEqual([
      'a',
      'sub',
      'sub/b',
      'sub/deeper',
      'sub/deeper/c',
    ]);
    for (const e of await lsTree(first, { store: fast, recursive: true }))
      expect(await fast.has(e.digest)).toBe(true);
  });

  it('and objects in store folders changed since the index was saved (the QA reproduction)', async () => {
    const cache = join(tmp, 'cache');
    await writeTree(src, { store });
    await backdate(cache, 2 * 3_600_000, true);
    await sleep(1200);
    await writeTree(src, { store });
    await backdate(cache, 2 * 3_600_000, true);
    await sleep(500);
    const digest = await writeTree(src, { store });
    await store.evict({ maxBytes: 0 });
    const entries = await lsTree(digest, { store, recursive: true });
    expect(entries).toHaveLength(5);
    for (const e of entries) expect(await store.has(e.digest)).toBe(true);
  });

  it('but an unchanged run within touchAfterMs touches no object', async () => {
    const cache = join(tmp, 'cache');
    const first = await writeTree(src, { store });
    // Objects "used" 6 minutes ago (folders left alone: their stamps hold), the index's record of their use a
    // moment ago: a refresh would touch them (older than half of touchAfterMs), an unchanged run does not look.
    await backdate(cache, 6 * 60_000, false);
    const before = await objectMtimes(cache);
    expect(await writeTree(src, { store })).toBe(first);
    const after = await objectMtimes(cache);
    // The root tree is stored again on every run (and refreshed only past touchAfterMs): nothing moved.
    expect(after).toEqual(before);
  });
});

/** Runs `writeTree(dir, { store: openStore(cache, { touchAfterMs }) })` in a child process as uid/gid 65534. */
function writeTreeAsNobody(dir: string, cache: string, touchAfterMs: number): Promise<number | null> {
  const entry = pathToFileURL(createRequire(import.meta.url).resolve('@fsw/tree')).href;
  const source = `import { openStore, writeTree } from ${JSON.stringify(entry)};
await writeTree(${JSON.stringify(dir)}, { store: openStore(${JSON.stringify(cache)}, { touchAfterMs: ${touchAfterMs} }) });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: 'inherit',
      uid: 65534,
      gid: 65534,
      cwd: '/',
    });
    child.on('error', reject);
    child.on('close', resolve);
  });
}

describe.skipIf(process.getuid?.() !== 0)('write-tree in a store shared with another user', () => {
  it('passes over objects whose times it may not set, and still vouches for its own (no refresh on every run)', async () => {
    await chmod(tmp, 0o755);
    const cache = join(tmp, 'cache');
    // Another user's (root's) object: the content of 'shared'.
    const theirs = join(tmp, 'theirs');
    await mkdir(theirs);
    await writeFile(join(theirs, 'shared'), 'same bytes');
    await writeTree(theirs, { store });
    const objects = join(cache, 'objects');
    await chmod(cache, 0o777);
    await chmod(objects, 0o777);
    for (const fan of await readdir(objects)) await chmod(join(objects, fan), 0o777);
    // This user's folder: the shared content and its own.
    await writeFile(join(src, 'shared'), 'same bytes');
    await writeFile(join(src, 'own'), 'only mine');
    await chown(src, 65534, 65534);
    for (const name of ['shared', 'own']) await chown(join(src, name), 65534, 65534);

    const T = 2500;
    expect(await writeTreeAsNobody(src, cache, T)).toBe(0);
    await sleep(T + 100);
    await backdate(cache, 2 * 3_600_000, false);
    // Stale: refreshes what it may (its own objects), passes over root's.
    expect(await writeTreeAsNobody(src, cache, T)).toBe(0);
    const fresh = (await objectMtimes(cache)).filter((m) => Date.now() - m < 60_000).length;
    expect(fresh).toBeGreaterThanOrEqual(1);
    // Within touchAfterMs of that refresh, nothing is refreshed again: it vouched for its objects.
    await backdate(cache, 2 * 3_600_000, false);
    expect(await writeTreeAsNobody(src, cache, T)).toBe(0);
    const after = await objectMtimes(cache);
    // Only the root tree (stored again each run, refreshed past touchAfterMs) may be recent.
    expect(after.filter((m) => Date.now() - m < 60_000).length).toBeLessThanOrEqual(1);
  });
});

describe('a store inside the folder whose name starts with two dots', () => {
  it('is left out of the tree like any store inside it (`..cache` is inside, not a parent)', async () => {
    await writeFile(join(src, 'a'), 'a');
    const outside = await writeTree(src, { store, index: false });
    const inside = openStore(join(src, '..cache'));
    // Twice: the second run finds the store's objects in the folder.
    await writeTree(src, { store: inside, index: false });
    expect(await writeTree(src, { store: inside, index: false })).toBe(outside);
    expect(await names(outside)).toEqual(['a']);
  });
});
