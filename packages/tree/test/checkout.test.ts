import { execFileSync } from 'node:child_process';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TreeError } from '@fsw/errors';
import { checkout, hashTree, lsTree, openStore, writeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIR_755, FILE_644, LINK_777, rawTree, snapshot } from './helpers.js';

const SCRIPT = resolve(import.meta.dirname, 'fixtures/fstree-vectors.sh');
let tmp: string;
let store: ReturnType<typeof openStore>;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-checkout-'));
  store = openStore(join(tmp, 'cache'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function expectTreeError(promise: Promise<unknown>, code: string): Promise<TreeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(TreeError.is(error), `expected TreeError ${code}, got ${String(error)}`).toBe(true);
  expect((error as TreeError).code).toBe(code);
  return error as TreeError;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

describe('checkout', () => {
  it('materialises a tree exactly: files, modes, empty dirs, symlinks unresolved', async () => {
    execFileSync('bash', [SCRIPT, join(tmp, 'v')]);
    const basic = await writeTree(join(tmp, 'v', 'basic'), { store, index: false });
    const ignore = await writeTree(join(tmp, 'v', 'ignore'), { store, index: false });
    const out = join(tmp, 'out', 'nested');
    const result = await checkout(basic, out, { store });
    expect(result).toMatchObject({ filesWritten: 5, symlinksWritten: 2, filesUnchanged: 0, removed: 0 });
    expect(await snapshot(out)).toEqual(await snapshot(join(tmp, 'v', 'basic')));
    expect(await readlink(join(out, 'dirlink'))).toBe('sub/deeper');
    expect((await lstat(join(out, 'run.sh'))).mode & 0o777).toBe(0o755);
    expect(await hashTree(out)).toBe(basic);

    const out2 = join(tmp, 'out2');
    await checkout(ignore, out2, { store });
    expect((await lstat(join(out2, 'private.key'))).mode & 0o777).toBe(0o600);
    expect(await readdir(join(out2, 'logs'))).toEqual([]);
    expect(await readFile(join(out2, 'dir one', 'ünï', 'big x.txt'), 'utf8')).toHaveLength(100000);
    expect(await hashTree(out2)).toBe(ignore);
  });

  it('updates a folder: replaces, removes, changes types and modes, leaves ignored paths alone', async () => {
    const src = join(tmp, 'src');
    await mkdir(join(src, 'a', 'b'), { recursive: true });
    await writeFile(join(src, '.fstreeignore'), 'build/\n*.log\n');
    await writeFile(join(src, 'keep.txt'), 'v1');
    await writeFile(join(src, 'gone.txt'), 'bye');
    await writeFile(join(src, 'a', 'b', 'deep.txt'), 'deep');
    await writeFile(join(src, 'becomes-dir'), 'file');
    await symlink('keep.txt', join(src, 'link'));
    const t1 = await writeTree(src, { store, index: false });

    await rm(join(src, 'gone.txt'));
    await rm(join(src, 'a'), { recursive: true });
    await rm(join(src, 'becomes-dir'));
    await mkdir(join(src, 'becomes-dir'));
    await writeFile(join(src, 'becomes-dir', 'inside'), 'x');
    await writeFile(join(src, 'keep.txt'), 'v2');
    await chmod(join(src, 'keep.txt'), 0o600);
    await rm(join(src, 'link'));
    await symlink('elsewhere', join(src, 'link'));
    const t2 = await writeTree(src, { store, index: false });

    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    await mkdir(join(out, 'build'));
    await writeFile(join(out, 'build', 'out.o'), 'ignored');
    await writeFile(join(out, 'debug.log'), 'ignored too');
    await writeFile(join(out, 'a', 'extra.txt'), 'not in any tree');

    const result = await checkout(t2, out, { store });
    expect(result.removed).toBeGreaterThanOrEqual(2);
    expect(await hashTree(out)).toBe(t2);
    expect(await readFile(join(out, 'keep.txt'), 'utf8')).toBe('v2');
    expect((await lstat(join(out, 'keep.txt'))).mode & 0o777).toBe(0o600);
    expect(await exists(join(out, 'gone.txt'))).toBe(false);
    expect(await exists(join(out, 'a'))).toBe(false);
    expect(await readlink(join(out, 'link'))).toBe('elsewhere');
    expect(await readFile(join(out, 'becomes-dir', 'inside'), 'utf8')).toBe('x');
    expect(await readFile(join(out, 'build', 'out.o'), 'utf8')).toBe('ignored');
    expect(await readFile(join(out, 'debug.log'), 'utf8')).toBe('ignored too');

    // And back again.
    await checkout(t1, out, { store });
    expect(await hashTree(out)).toBe(t1);
    expect(await readFile(join(out, 'build', 'out.o'), 'utf8')).toBe('ignored');
  });

  it('skips files the index shows equal, and rewrites a file changed behind its back', async () => {
    const src = join(tmp, 'src');
    await mkdir(src);
    for (let i = 0; i < 20; i++) await writeFile(join(src, `f${i}`), `content ${i}`);
    const t = await writeTree(src, { store, index: false });
    const out = join(tmp, 'out');
    const reports: {
      filesDone: number;
      filesTotal: number;
      bytesDone: number;
      bytesTotal: number;
      done: boolean;
    }[] = [];
    expect((await checkout(t, out, { store, onProgress: (p) => reports.push(p) })).filesWritten).toBe(20);
    expect(reports.at(-1)).toMatchObject({ done: true, filesDone: 20, filesTotal: 20 });
    expect(reports.at(-1)?.bytesDone).toBe(reports.at(-1)?.bytesTotal);
    expect(reports.at(-1)?.bytesTotal).toBe(20 * 'content 0'.length + 10);
    await writeFile(join(out, 'f3'), 'tampered');
    const again = await checkout(t, out, { store });
    expect(again).toMatchObject({ filesWritten: 1, filesUnchanged: 19 });
    expect(await readFile(join(out, 'f3'), 'utf8')).toBe('content 3');
  });

  it('changes nothing on disk when nothing changed: files, symlinks and the index keep their inode and mtime', async () => {
    const src = join(tmp, 'src');
    await mkdir(join(src, 'sub', 'deeper'), { recursive: true });
    for (let i = 0; i < 5; i++) await writeFile(join(src, `f${i}`), `content ${i}`);
    await writeFile(join(src, 'sub', 'deeper', 'g'), 'g');
    await symlink('sub/deeper', join(src, 'link'));
    const t = await writeTree(src, { store, index: false });
    const out = join(tmp, 'out');
    await checkout(t, out, { store });
    // The second run records the symlinks it found equal; from then on the index says exactly what a run would.
    await checkout(t, out, { store });
    const facts = async () => {
      const paths = ['f0', 'f4', join('sub', 'deeper', 'g'), 'link', join('.fstree', 'index')];
      return Promise.all(
        paths.map(async (p) => {
          const st = await lstat(join(out, p));
          return { p, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
        }),
      );
    };
    const before = await facts();
    const again = await checkout(t, out, { store });
    expect(again).toEqual({
      filesWritten: 0,
      filesUnchanged: 6,
      symlinksWritten: 0,
      dirsCreated: 0,
      removed: 0,
    });
    expect(await facts()).toEqual(before);
    expect(await hashTree(out)).toBe(t);
  });

  // workers 1: the files on disk are lstat-ed by the helper thread (from the start); 0: on the main thread only.
  it.each([0, 1])(
    'rewrites a file changed in place (same size, new mtime) and records it, then leaves it alone (workers %i)',
    async (workers) => {
      const src = join(tmp, 'src');
      await mkdir(join(src, 'sub'), { recursive: true });
      for (let i = 0; i < 5; i++) await writeFile(join(src, `f${i}`), `content ${i}`);
      for (let i = 0; i < 1500; i++) await writeFile(join(src, 'sub', `g${i}`), `g ${i}`);
      const t = await writeTree(src, { store, index: false });
      const out = join(tmp, 'out');
      await checkout(t, out, { store, workers });
      const indexBefore = await lstat(join(out, '.fstree', 'index'));
      await writeFile(join(out, 'f2'), 'CONTENT 2'); // same size, same inode
      await writeFile(join(out, 'sub', 'g1234'), 'G 1234');
      const fixed = await checkout(t, out, { store, workers });
      expect(fixed).toMatchObject({ filesWritten: 2, filesUnchanged: 1503 });
      expect(await readFile(join(out, 'f2'), 'utf8')).toBe('content 2');
      expect(await readFile(join(out, 'sub', 'g1234'), 'utf8')).toBe('g 1234');
      const indexAfter = await lstat(join(out, '.fstree', 'index'));
      expect(indexAfter.ino === indexBefore.ino && indexAfter.mtimeMs === indexBefore.mtimeMs).toBe(false);
      const f2 = await lstat(join(out, 'f2'));
      expect(await checkout(t, out, { store, workers })).toMatchObject({
        filesWritten: 0,
        filesUnchanged: 1505,
      });
      expect((await lstat(join(out, 'f2'))).ino).toBe(f2.ino);
      expect(await hashTree(out)).toBe(t);
    },
  );

  it('needs objects only for the files it writes: an evicted object of an unchanged file is no error', async () => {
    const src = join(tmp, 'src');
    await mkdir(src);
    await writeFile(join(src, 'kept'), 'kept');
    await writeFile(join(src, 'other'), 'other');
    const t = await writeTree(src, { store, index: false });
    const out = join(tmp, 'out');
    await checkout(t, out, { store });
    const keptDigest = (await lsTree(t, { store })).find((e) => e.name === 'kept')!.digest;
    await rm(store.path(keptDigest, 'file'));
    expect(await checkout(t, out, { store })).toMatchObject({ filesWritten: 0, filesUnchanged: 2 });
    // Once the file must be written, the missing object is found before anything is written.
    await writeFile(join(out, 'kept'), 'changed');
    await writeFile(join(out, 'other'), 'changed too');
    await expectTreeError(checkout(t, out, { store }), 'E_MISSING_OBJECT');
    expect(await readFile(join(out, 'other'), 'utf8')).toBe('changed too');
  });

  it('fills a folder fsw never wrote only where contents already match, else refuses without force', async () => {
    const src = join(tmp, 'src');
    await mkdir(src);
    await writeFile(join(src, 'same.txt'), 'same');
    await writeFile(join(src, 'other.txt'), 'tree version');
    const t = await writeTree(src, { store, index: false });

    const out = join(tmp, 'out');
    await mkdir(out);
    await writeFile(join(out, 'same.txt'), 'same');
    // Only equal files: nothing to overwrite, so no force needed.
    expect(await checkout(t, out, { store })).toMatchObject({ filesUnchanged: 1, filesWritten: 1 });

    const foreign = join(tmp, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, 'other.txt'), 'mine');
    await writeFile(join(foreign, 'notes.txt'), 'mine too');
    const before = await snapshot(foreign);
    const err = await expectTreeError(checkout(t, foreign, { store }), 'E_NOT_EMPTY');
    expect(err.message).toMatch(/differs from the tree|not in the tree/);
    expect(await snapshot(foreign)).toEqual(before);
    await checkout(t, foreign, { store, force: true });
    expect(await hashTree(foreign)).toBe(t);
  });

  it('refuses to replace a non-empty folder it did not write, before writing anything', async () => {
    const src = join(tmp, 'src');
    await mkdir(src);
    await writeFile(join(src, 'x'), 'a file in the tree');
    await writeFile(join(src, 'y'), 'another');
    const t = await writeTree(src, { store, index: false });

    const out = join(tmp, 'out');
    await checkout(t, out, { store });
    // Someone replaces the file x by a folder with their own work in it.
    await rm(join(out, 'x'));
    await mkdir(join(out, 'x'));
    await writeFile(join(out, 'x', 'precious'), 'work');
    await rm(join(out, 'y'));
    await expectTreeError(checkout(t, out, { store }), 'E_NOT_EMPTY');
    expect(await readFile(join(out, 'x', 'precious'), 'utf8')).toBe('work');
    expect(await exists(join(out, 'y'))).toBe(false);

    // An empty folder is simply replaced; so is a non-empty one with force.
    await checkout(t, out, { store, force: true });
    expect(await readFile(join(out, 'x'), 'utf8')).toBe('a file in the tree');

    // A folder added by someone else, not in the tree: kept unless forced.
    await mkdir(join(out, 'theirs'));
    await writeFile(join(out, 'theirs', 'f'), 'f');
    await expectTreeError(checkout(t, out, { store }), 'E_NOT_EMPTY');
    expect(await exists(join(out, 'theirs', 'f'))).toBe(true);
  });

  it('never writes through a symlink: one in the way of a folder is replaced, its target untouched', async () => {
    const outside = join(tmp, 'outside');
    await mkdir(outside);
    // Tree 1: `d` is a symlink to a folder outside the checkout.
    const t1 = await store.put(rawTree([{ name: 'd', status: LINK_777, target: outside }]), 'tree');
    // Tree 2: `d` is a folder holding a file `f`.
    const fileDigest = await store.put(Buffer.from('payload'));
    const sub = await store.put(rawTree([{ name: 'f', digest: fileDigest, status: FILE_644 }]), 'tree');
    const t2 = await store.put(rawTree([{ name: 'd', digest: sub, status: DIR_755 }]), 'tree');

    const out = join(tmp, 'out');
    await checkout(t1, out, { store });
    expect(await readlink(join(out, 'd'))).toBe(outside);
    await checkout(t2, out, { store });
    expect((await lstat(join(out, 'd'))).isDirectory()).toBe(true);
    expect(await readFile(join(out, 'd', 'f'), 'utf8')).toBe('payload');
    expect(await readdir(outside)).toEqual([]);

    // A symlink planted (not by fsw) where a file goes is replaced, not written through.
    const victim = join(outside, 'victim');
    await writeFile(victim, 'original');
    await rm(join(out, 'd', 'f'));
    await symlink(victim, join(out, 'd', 'f'));
    await checkout(t2, out, { store, force: true });
    expect((await lstat(join(out, 'd', 'f'))).isFile()).toBe(true);
    expect(await readFile(victim, 'utf8')).toBe('original');
  });

  it.each([
    ['..', { name: '..', digest: '', status: DIR_755 }],
    ['.', { name: '.', digest: '', status: DIR_755 }],
    ['a slash', { name: 'x/../../escape', digest: '', status: FILE_644 }],
  ])('rejects a tree naming %s with E_CORRUPT and writes nothing', async (_label, entry) => {
    const fileDigest = await store.put(Buffer.from('evil'));
    const bad = await store.put(rawTree([{ ...entry, digest: fileDigest }]), 'tree');
    const out = join(tmp, 'out');
    await expectTreeError(checkout(bad, out, { store }), 'E_CORRUPT');
    expect(await exists(out)).toBe(false);
    expect(await exists(join(tmp, 'escape'))).toBe(false);
  });

  it('validates every subtree and object before writing anything', async () => {
    const good = await store.put(Buffer.from('fine'));
    const corruptSub = await store.put(
      rawTree([
        { name: 'b', digest: good, status: FILE_644 },
        { name: 'a', digest: good, status: FILE_644 },
      ]),
      'tree',
    );
    const t = await store.put(
      rawTree([
        { name: 'first.txt', digest: good, status: FILE_644 },
        { name: 'z', digest: corruptSub, status: DIR_755 },
      ]),
      'tree',
    );
    const out = join(tmp, 'out');
    const err = await expectTreeError(checkout(t, out, { store }), 'E_CORRUPT');
    expect(err.message).toMatch(/not sorted/);
    expect(await exists(out)).toBe(false);

    const absent = `blake3:${'7'.repeat(64)}`;
    const t2 = await store.put(
      rawTree([
        { name: 'a', digest: good, status: FILE_644 },
        { name: 'b', digest: absent, status: FILE_644 },
      ]),
      'tree',
    );
    await expectTreeError(checkout(t2, out, { store }), 'E_MISSING_OBJECT');
    expect(await exists(out)).toBe(false);
    await expectTreeError(checkout(absent, out, { store }), 'E_MISSING_OBJECT');

    const withIndexDir = await store.put(
      rawTree([{ name: '.fstree', digest: good, status: FILE_644 }]),
      'tree',
    );
    await expectTreeError(checkout(withIndexDir, out, { store }), 'E_INVALID_ARGUMENT');
  });

  it('leaves no half-written file when a write fails', async () => {
    const src = join(tmp, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'new content');
    const t = await writeTree(src, { store, index: false });
    const out = join(tmp, 'out');
    await mkdir(out);
    await writeFile(join(out, 'a.txt'), 'old content');
    // Damage the object: a verifying store notices after copying, and the old file must survive intact.
    await writeFile(store.path(await firstFileDigest(t)), 'damaged!!!!');
    const verifying = openStore(store.dir, { verify: true });
    await expectTreeError(checkout(t, out, { store: verifying, force: true }), 'E_CORRUPT');
    expect(await readFile(join(out, 'a.txt'), 'utf8')).toBe('old content');
    expect((await readdir(out)).filter((n) => n.startsWith('.fsw-tmp'))).toEqual([]);
  });

  async function firstFileDigest(tree: string): Promise<string> {
    const { readTree } = await import('@fsw/tree');
    return (await readTree(tree, { store }))[0]!.digest;
  }

  it('can be run again after an abort half-way, without force', async () => {
    const src = join(tmp, 'src');
    for (let d = 0; d < 3; d++) {
      await mkdir(join(src, `d${d}`), { recursive: true });
      for (let i = 0; i < 10; i++) await writeFile(join(src, `d${d}`, `f${i}`), `${d}/${i}`);
    }
    const t = await writeTree(src, { store, index: false });
    const out = join(tmp, 'out');
    const reason = new Error('interrupted');
    const controller = new AbortController();
    await expect(
      checkout(t, out, {
        store,
        concurrency: 1,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.filesDone >= 1) controller.abort(reason);
        },
      }),
    ).rejects.toBe(reason);
    expect(await hashTree(out)).not.toBe(t);
    expect((await readdir(join(out, 'd0'))).filter((n) => n.startsWith('.fsw-tmp'))).toEqual([]);
    await checkout(t, out, { store });
    expect(await hashTree(out)).toBe(t);
  });

  it('throws signal.reason when aborted', async () => {
    const src = join(tmp, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a'), 'a');
    const t = await writeTree(src, { store, index: false });
    const reason = new Error('stop');
    await expect(checkout(t, join(tmp, 'out'), { store, signal: AbortSignal.abort(reason) })).rejects.toBe(
      reason,
    );
  });
});

describe('checkout over a folder the fstree C++ tool wrote', () => {
  /**
   * `.fstree/index` as the fstree tool leaves it after a checkout (same path as ours, its own format): u16 magic
   * 0x3ee3, u16 version 1, then per path u64 length + path, u64 length + digest, u32 status, i64 mtime (ns), and for
   * a symlink u64 length + target; little-endian.
   */
  async function writeFstreeIndex(dir: string, paths: readonly string[]): Promise<void> {
    const parts: Buffer[] = [Buffer.from([0xe3, 0x3e, 0x01, 0x00])];
    const u64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    for (const rel of paths) {
      const st = await lstat(join(dir, rel), { bigint: true });
      const kind = st.isSymbolicLink() ? 4 : st.isDirectory() ? 2 : 1;
      // Digests as fstree records them (a file's blake3, a folder's tree; none for a symlink); not relied upon.
      const digest = kind === 4 ? '' : `blake3:${(kind === 1 ? '0' : '1').repeat(64)}`;
      const status = Buffer.alloc(12);
      status.writeUInt32LE((kind << 24) | Number(st.mode & 0o7777n), 0);
      status.writeBigInt64LE(st.mtimeNs, 4);
      parts.push(
        u64(Buffer.byteLength(rel)),
        Buffer.from(rel),
        u64(digest.length),
        Buffer.from(digest),
        status,
      );
      if (kind === 4) {
        const target = await readlink(join(dir, rel));
        parts.push(u64(Buffer.byteLength(target)), Buffer.from(target));
      }
    }
    await mkdir(join(dir, '.fstree'), { recursive: true });
    await writeFile(join(dir, '.fstree', 'index'), Buffer.concat(parts));
  }

  it("updates the files of folders listed in fstree's index instead of refusing them as foreign", async () => {
    const src = join(tmp, 'src');
    await mkdir(join(src, 'sub', 'deeper'), { recursive: true });
    await writeFile(join(src, 'a.txt'), 'a');
    await writeFile(join(src, 'sub', 'b.txt'), 'version 1');
    await writeFile(join(src, 'sub', 'deeper', 'c.txt'), 'c');
    await symlink('b.txt', join(src, 'sub', 'link'));
    const t1 = await writeTree(src, { store, index: false });

    // The folder as `fstree checkout` leaves it: the tree's files, and fstree's own index.
    const out = join(tmp, 'out');
    await checkout(t1, out, { store, index: false });
    await writeFstreeIndex(out, ['a.txt', 'sub', 'sub/b.txt', 'sub/deeper', 'sub/deeper/c.txt', 'sub/link']);

    await writeFile(join(src, 'sub', 'b.txt'), 'version 2');
    await rm(join(src, 'sub', 'deeper', 'c.txt'));
    const t2 = await writeTree(src, { store, index: false });
    await checkout(t2, out, { store });
    expect(await hashTree(out)).toBe(t2);
    expect(await readFile(join(out, 'sub', 'b.txt'), 'utf8')).toBe('version 2');

    // A folder that index does not list stays protected.
    await writeFstreeIndex(out, ['a.txt']);
    await mkdir(join(out, 'theirs'));
    await writeFile(join(out, 'theirs', 'f'), 'work');
    await expectTreeError(checkout(t1, out, { store }), 'E_NOT_EMPTY');
    expect(await readFile(join(out, 'theirs', 'f'), 'utf8')).toBe('work');
  });
});
