import { execFileSync } from 'node:child_process';
import {
  chmod,
  link,
  lstat,
  mkdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { type CopyProgress, copy, move } from '@fsw/copy';
import { CopyError } from '@fsw/errors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digest, listAll, makeTree, readTree, tempDir, tempFiles } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

const OLD = new Date('2020-02-03T04:05:06Z');

describe('copy: cp -r destination semantics', () => {
  it('copies a file to a new name, and into an existing directory', async () => {
    await makeTree(dir, { 'a.txt': 'alpha', 'out/.keep': '' });
    const r1 = await copy(join(dir, 'a.txt'), join(dir, 'b.txt'));
    expect(r1).toMatchObject({ files: 1, bytes: 5, skipped: 0, errors: 0 });
    expect(await readFile(join(dir, 'b.txt'), 'utf8')).toBe('alpha');
    await copy(join(dir, 'a.txt'), join(dir, 'out'));
    expect(await readFile(join(dir, 'out/a.txt'), 'utf8')).toBe('alpha');
  });

  it('copies a directory recursively to a new name, or inside an existing directory', async () => {
    const src = join(dir, 'src');
    await makeTree(src, { 'x.txt': 'x', 'sub/y.bin': 3000, 'sub/deeper/z': 'zz', '.hidden': 'h' });
    await mkdir(join(src, 'empty'));
    const r = await copy(src, join(dir, 'new'));
    expect(r).toMatchObject({ files: 4, bytes: 1 + 3000 + 2 + 1, errors: 0 });
    expect(await listAll(join(dir, 'new'))).toEqual(await listAll(src));
    expect(await readTree(join(dir, 'new'))).toEqual(await readTree(src));

    await mkdir(join(dir, 'existing'));
    await copy(src, join(dir, 'existing'));
    expect(await readTree(join(dir, 'existing/src'))).toEqual(await readTree(src));
  });

  it('copies several sources into a directory, and refuses several sources onto a non-directory', async () => {
    await makeTree(dir, { 'a.txt': 'a', 'd/b.txt': 'b', 'out/.keep': '', file: 'f' });
    const r = await copy([join(dir, 'a.txt'), join(dir, 'd')], join(dir, 'out'));
    expect(r.files).toBe(2);
    expect(await readFile(join(dir, 'out/d/b.txt'), 'utf8')).toBe('b');
    const err = await copy([join(dir, 'a.txt'), join(dir, 'd')], join(dir, 'file')).catch((e: unknown) => e);
    expect(CopyError.is(err) && err.code).toBe('E_NOT_DIR');
    const err2 = await copy([join(dir, 'a.txt'), join(dir, 'd')], join(dir, 'nope')).catch((e: unknown) => e);
    expect(CopyError.is(err2) && err2.code).toBe('E_NOT_FOUND');
  });

  it('takes a trailing slash to mean a directory, as cp and mv do (E_NOT_DIR)', async () => {
    await makeTree(dir, { f: 'hi', existing: 'mine', 'd/a': 'a' });
    await symlink('d', join(dir, 'link'));
    const refused = async (p: Promise<unknown>, path: string) => {
      const err = await p.catch((e: unknown) => e);
      expect(CopyError.is(err), path).toBe(true);
      expect(err, path).toMatchObject({ code: 'E_NOT_DIR', path: join(dir, path) });
    };
    // A file to `x/`: x must be an existing directory.
    await refused(copy(join(dir, 'f'), `${join(dir, 'nodir')}/`), 'nodir');
    await refused(move(join(dir, 'f'), `${join(dir, 'newname')}/`), 'newname');
    await refused(copy(join(dir, 'f'), `${join(dir, 'existing')}/`, { overwrite: 'overwrite' }), 'existing');
    await refused(copy(join(dir, 'd'), `${join(dir, 'existing')}/`), 'existing');
    // A source `file/` is not a directory; mv refuses `link/` too.
    await refused(copy(`${join(dir, 'f')}/`, join(dir, 'y')), 'f');
    await refused(move(`${join(dir, 'f')}/`, join(dir, 'y')), 'f');
    await refused(move(`${join(dir, 'link')}/`, join(dir, 'y')), 'link');
    expect(await listAll(dir)).toEqual(['d', 'd/a', 'existing', 'f', 'link', 'link/a']);
    expect(await readFile(join(dir, 'existing'), 'utf8')).toBe('mine');
    // A directory to `new/` creates it; `link/` copies the directory the link points to; an existing `dir/` receives.
    await copy(join(dir, 'd'), `${join(dir, 'new')}/`);
    await copy(`${join(dir, 'link')}/`, join(dir, 'viaLink'));
    await copy(join(dir, 'f'), `${join(dir, 'd')}/`);
    expect(await listAll(dir)).toEqual(
      [
        'd',
        'd/a',
        'd/f',
        'existing',
        'f',
        'link',
        'link/a',
        'link/f',
        'new',
        'new/a',
        'viaLink',
        'viaLink/a',
      ].sort(),
    );
  });

  it('refuses a destination whose parent does not exist, naming it', async () => {
    await makeTree(dir, { 'a.txt': 'a' });
    const err = await copy(join(dir, 'a.txt'), join(dir, 'no/such/b.txt')).catch((e: unknown) => e);
    expect(CopyError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'E_NOT_FOUND', path: join(dir, 'no/such') });
  });
});

describe('copy: metadata and symlinks', () => {
  it('preserves mode and mtime by default (small and large files, and directories)', async () => {
    const src = join(dir, 'src');
    await makeTree(src, { 'run.sh': '#!/bin/sh\n', 'big.bin': 9 * 1024 * 1024, 'locked/f': 'f' });
    await chmod(join(src, 'run.sh'), 0o751);
    await chmod(join(src, 'big.bin'), 0o640);
    for (const f of ['run.sh', 'big.bin', 'locked/f']) await utimes(join(src, f), OLD, OLD);
    await utimes(join(src, 'locked'), OLD, OLD);
    await chmod(join(src, 'locked'), 0o555);
    await copy(src, join(dir, 'dst'));
    for (const f of ['run.sh', 'big.bin', 'locked/f', 'locked']) {
      const [a, b] = await Promise.all([stat(join(src, f)), stat(join(dir, 'dst', f))]);
      expect((b.mode & 0o7777).toString(8), f).toBe((a.mode & 0o7777).toString(8));
      expect(Math.abs(b.mtimeMs - OLD.getTime()), f).toBeLessThan(1);
    }
    expect(await digest(join(dir, 'dst/big.bin'))).toBe(await digest(join(src, 'big.bin')));
    await chmod(join(src, 'locked'), 0o755);
    await chmod(join(dir, 'dst/locked'), 0o755);
  });

  it('keeps the mode and mtime of a directory that existed (merged into), and sets them on the ones it creates', async () => {
    const src = join(dir, 'src');
    await makeTree(src, { a: 'a', 'sub/x': 'x', 'new/y': 'y' });
    const shared = join(dir, 'shared');
    await makeTree(shared, { 'sub/x': 'theirs' });
    const T1 = new Date('2021-05-06T07:08:09Z');
    await utimes(join(shared, 'sub'), T1, T1);
    await chmod(join(shared, 'sub'), 0o750);
    await chmod(shared, 0o1777);
    for (const d of ['sub', 'new', '.']) {
      await utimes(join(src, d), OLD, OLD);
      await chmod(join(src, d), 0o700);
    }
    for (const fn of [copy, move]) {
      const r = await fn(`${src}/.`, shared, { overwrite: 'skip' });
      expect(r, fn.name).toMatchObject({ files: 2, skipped: 1 });
      const [top, sub, created] = await Promise.all(['.', 'sub', 'new'].map((d) => stat(join(shared, d))));
      expect((top!.mode & 0o7777).toString(8), fn.name).toBe('1777');
      expect(Math.abs(top!.mtimeMs - OLD.getTime()), fn.name).toBeGreaterThan(1000);
      // Nothing was written into sub (its file was skipped): untouched.
      expect((sub!.mode & 0o7777).toString(8), fn.name).toBe('750');
      expect(sub!.mtimeMs, fn.name).toBe(T1.getTime());
      expect((created!.mode & 0o7777).toString(8), fn.name).toBe('700');
      expect(Math.abs(created!.mtimeMs - OLD.getTime()), fn.name).toBeLessThan(1);
      if (fn === copy) await rm(join(shared, 'a')).then(() => rm(join(shared, 'new'), { recursive: true }));
    }
  });

  it('with preserve: false, gives new files the umask mode and the current time', async () => {
    await makeTree(dir, { 'a.sh': 'x' });
    await chmod(join(dir, 'a.sh'), 0o777);
    await utimes(join(dir, 'a.sh'), OLD, OLD);
    const umask = process.umask();
    await copy(join(dir, 'a.sh'), join(dir, 'b.sh'), { preserve: false });
    const b = await stat(join(dir, 'b.sh'));
    expect((b.mode & 0o777).toString(8)).toBe((0o777 & ~umask).toString(8));
    expect(b.mtimeMs).toBeGreaterThan(OLD.getTime() + 1000);
  });

  it('copies symlinks as symlinks, or what they point to with symlinks: follow', async () => {
    const src = join(dir, 'src');
    await makeTree(src, { 'target.txt': 'T' });
    await symlink('target.txt', join(src, 'link'));
    await copy(src, join(dir, 'kept'));
    expect((await lstat(join(dir, 'kept/link'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, 'kept/link'))).toBe('target.txt');
    await copy(src, join(dir, 'followed'), { symlinks: 'follow' });
    expect((await lstat(join(dir, 'followed/link'))).isFile()).toBe(true);
    expect(await readFile(join(dir, 'followed/link'), 'utf8')).toBe('T');
  });
});

describe('copy: overwrite policy', () => {
  async function setup() {
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    await makeTree(src, { 'same.txt': 'new content', 'fresh.txt': 'fresh', 'sub/old.txt': 'newer src' });
    await makeTree(dst, { 'same.txt': 'old', 'sub/old.txt': 'older dst' });
    await utimes(join(dst, 'same.txt'), new Date(), new Date(Date.now() + 60_000));
    await utimes(join(dst, 'sub/old.txt'), OLD, OLD);
    return { src, dst };
  }

  it("'error' (default) refuses with E_EXISTS naming the destination, and writes nothing for that file", async () => {
    const { src, dst } = await setup();
    const err = await copy(join(src, 'same.txt'), join(dst, 'same.txt')).catch((e: unknown) => e);
    expect(CopyError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'E_EXISTS', path: join(dst, 'same.txt') });
    expect((err as Error).message).toContain(join(dst, 'same.txt'));
    expect(await readFile(join(dst, 'same.txt'), 'utf8')).toBe('old');
    expect(await tempFiles(dst)).toEqual([]);
  });

  it("'error' with onError skip copies everything else and counts the conflicts", async () => {
    const { src, dst } = await setup();
    const seen: string[] = [];
    const r = await copy(`${src}/.`, dst, {
      onError: (e) => {
        seen.push(`${e.code} ${e.path}`);
        return 'skip';
      },
    });
    expect(r).toMatchObject({ files: 1, errors: 2 });
    expect(seen.sort()).toEqual([
      `E_EXISTS ${join(dst, 'same.txt')}`,
      `E_EXISTS ${join(dst, 'sub/old.txt')}`,
    ]);
    expect(await readFile(join(dst, 'fresh.txt'), 'utf8')).toBe('fresh');
    expect(await readFile(join(dst, 'same.txt'), 'utf8')).toBe('old');
  });

  it("'skip', 'overwrite' and 'newer' merge into an existing tree", async () => {
    let { src, dst } = await setup();
    const skip = await copy(`${src}/.`, dst, { overwrite: 'skip' });
    expect(skip).toMatchObject({ files: 1, skipped: 2 });
    expect(await readFile(join(dst, 'same.txt'), 'utf8')).toBe('old');

    await cleanup();
    ({ dir, cleanup } = await tempDir());
    ({ src, dst } = await setup());
    const newer = await copy(`${src}/.`, dst, { overwrite: 'newer' });
    expect(newer).toMatchObject({ files: 2, skipped: 1 });
    expect(await readFile(join(dst, 'same.txt'), 'utf8')).toBe('old');
    expect(await readFile(join(dst, 'sub/old.txt'), 'utf8')).toBe('newer src');

    const over = await copy(`${src}/.`, dst, { overwrite: 'overwrite' });
    expect(over).toMatchObject({ files: 3, skipped: 0 });
    expect(await readTree(dst)).toEqual(await readTree(src));
    expect(await tempFiles(dst)).toEqual([]);
  });

  it('never replaces a directory with a file or a file with a directory', async () => {
    await makeTree(dir, { 'src/x/inner': 'i', 'src/y': 'file', 'dst/src/x': 'a file', 'dst/src/y/z': 'dir' });
    const errors: string[] = [];
    await copy(join(dir, 'src'), join(dir, 'dst'), {
      overwrite: 'overwrite',
      onError: (e) => {
        errors.push(e.code);
        return 'skip';
      },
    });
    expect(errors.sort()).toEqual(['E_IS_DIR', 'E_NOT_DIR']);
    expect(await readFile(join(dir, 'dst/src/x'), 'utf8')).toBe('a file');
    expect(await readFile(join(dir, 'dst/src/y/z'), 'utf8')).toBe('dir');
  });
});

describe('copy: refusals', () => {
  it('refuses a missing source with E_NOT_FOUND before writing anything', async () => {
    await makeTree(dir, { 'a.txt': 'a' });
    await mkdir(join(dir, 'out'));
    const err = await copy([join(dir, 'a.txt'), join(dir, 'missing')], join(dir, 'out')).catch(
      (e: unknown) => e,
    );
    expect(CopyError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'E_NOT_FOUND', path: join(dir, 'missing') });
    expect(await listAll(join(dir, 'out'))).toEqual([]);
  });

  it('refuses a directory into itself or onto itself, also through a symlink (E_INVALID_ARGUMENT)', async () => {
    await makeTree(dir, { 'src/sub/f': 'f' });
    await symlink(join(dir, 'src/sub'), join(dir, 'alias'));
    for (const [from, to] of [
      ['src', 'src'],
      ['src', 'src/sub'],
      ['src', 'alias'],
      ['src', 'alias/new'],
      ['src/sub', 'src'],
    ] as const) {
      const err = await copy(join(dir, from), join(dir, to)).catch((e: unknown) => e);
      expect(CopyError.is(err), `${from} -> ${to}`).toBe(true);
      expect((err as CopyError).code, `${from} -> ${to}`).toBe('E_INVALID_ARGUMENT');
    }
    const moved = await move(join(dir, 'src'), join(dir, 'src/sub')).catch((e: unknown) => e);
    expect((moved as CopyError).code).toBe('E_INVALID_ARGUMENT');
    expect(await listAll(join(dir, 'src'))).toEqual(['sub', 'sub/f']);
  });

  it('refuses a file onto itself', async () => {
    await makeTree(dir, { 'a.txt': 'a' });
    const err = await copy(join(dir, 'a.txt'), join(dir, 'a.txt'), { overwrite: 'overwrite' }).catch(
      (e: unknown) => e,
    );
    expect((err as CopyError).code).toBe('E_INVALID_ARGUMENT');
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('a');
  });

  it('refuses a symlink copied or moved onto the file it points to, which is kept (E_INVALID_ARGUMENT)', async () => {
    await makeTree(dir, { 'real/x': 'PRECIOUS', 's/keep': 'k' });
    await symlink(join(dir, 'real/x'), join(dir, 's/abs'));
    await symlink('../real/x', join(dir, 's/x'));
    for (const [name, fn] of [
      ['s/abs', copy],
      ['s/x', copy],
      ['s/abs', move],
      ['s/x', move],
    ] as const) {
      const to = name === 's/x' ? join(dir, 'real') : join(dir, 'real/x');
      const err = await fn(join(dir, name), to, { overwrite: 'overwrite' }).catch((e: unknown) => e);
      expect(err, `${fn.name} ${name}`).toMatchObject({
        code: 'E_INVALID_ARGUMENT',
        path: join(dir, 'real/x'),
      });
      expect((await lstat(join(dir, 'real/x'))).isFile()).toBe(true);
      expect(await readFile(join(dir, 'real/x'), 'utf8')).toBe('PRECIOUS');
      expect((await lstat(join(dir, name))).isSymbolicLink()).toBe(true);
    }
  });

  it('inside a merge, refuses per entry a symlink onto what it points to, and the same file under another name', async () => {
    await makeTree(dir, {
      'home/.vimrc': 'VIMRC',
      'home/target': 't',
      'farm/other': 'o',
      'a/x': '1',
      'a/y': '2',
    });
    await utimes(join(dir, 'home/.vimrc'), OLD, OLD);
    // Newer than the file it points to, so that 'newer' would replace it too.
    await symlink('../home/.vimrc', join(dir, 'farm/.vimrc'));
    // The destination is itself a symlink: a copy of a link naming it would point at itself.
    await symlink('target', join(dir, 'home/alias'));
    await symlink('../home/alias', join(dir, 'farm/alias'));
    for (const overwrite of ['newer', 'overwrite'] as const) {
      const errors: CopyError[] = [];
      const r = await copy(`${join(dir, 'farm')}/.`, join(dir, 'home'), {
        overwrite,
        onError: (e) => {
          errors.push(e);
          return 'skip';
        },
      });
      expect(r, overwrite).toMatchObject({ files: 1, errors: 2 });
      expect(errors.map((e) => [e.code, e.path]).sort()).toEqual([
        ['E_INVALID_ARGUMENT', join(dir, 'home/.vimrc')],
        ['E_INVALID_ARGUMENT', join(dir, 'home/alias')],
      ]);
      expect(await readFile(join(dir, 'home/.vimrc'), 'utf8')).toBe('VIMRC');
      expect(await readlink(join(dir, 'home/alias'))).toBe('target');
    }
    const moved = await move(`${join(dir, 'farm')}/.`, join(dir, 'home'), {
      overwrite: 'overwrite',
      onError: () => 'skip',
    });
    expect(moved).toMatchObject({ files: 1, errors: 2 });
    expect(await readFile(join(dir, 'home/.vimrc'), 'utf8')).toBe('VIMRC');
    expect(await listAll(join(dir, 'farm'))).toEqual(['.vimrc', 'alias']);

    // Two hard links of one file: like mv (rename() between them does nothing) and cp, refused; the source is kept.
    await mkdir(join(dir, 'b'));
    await link(join(dir, 'a/x'), join(dir, 'b/x'));
    const r = await move(`${join(dir, 'a')}/.`, join(dir, 'b'), {
      overwrite: 'overwrite',
      onError: () => 'skip',
    });
    expect(r).toMatchObject({ files: 1, errors: 1 });
    expect(await listAll(join(dir, 'a'))).toEqual(['x']);
    expect(await listAll(join(dir, 'b'))).toEqual(['x', 'y']);
    expect(await readFile(join(dir, 'b/x'), 'utf8')).toBe('1');
  });

  it('refuses FIFOs, sockets and devices below a source with E_NOT_FILE (or skips them through onError)', async () => {
    await makeTree(dir, { 'src/a': 'a' });
    execFileSync('mkfifo', [join(dir, 'src/pipe')]);
    const err = await copy(join(dir, 'src'), join(dir, 'out')).catch((e: unknown) => e);
    expect(CopyError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'E_NOT_FILE', path: join(dir, 'src/pipe') });
    await expect(stat(join(dir, 'out'))).rejects.toMatchObject({ code: 'ENOENT' });
    const r = await copy(join(dir, 'src'), join(dir, 'out'), { onError: () => 'skip' });
    expect(r).toMatchObject({ files: 1, errors: 1 });
    expect(await listAll(join(dir, 'out'))).toEqual(['a']);
  });

  it('rejects bad options with E_INVALID_ARGUMENT', async () => {
    await makeTree(dir, { 'a.txt': 'a' });
    for (const options of [{ overwrite: 'always' }, { reflink: 'maybe' }, { concurrency: 0 }] as const) {
      const err = await copy(join(dir, 'a.txt'), join(dir, 'b'), options as never).catch((e: unknown) => e);
      expect((err as CopyError).code).toBe('E_INVALID_ARGUMENT');
    }
  });
});

describe('copy: filter, dry run, progress, reflink', () => {
  it('copies only what the filter selects (glob, ignore, hidden)', async () => {
    const src = join(dir, 'src');
    await makeTree(src, {
      'a.jpg': 1,
      'b.txt': 'b',
      '.secret.jpg': 's',
      'album/c.jpg': 2,
      'album/d.png': 3,
      'cache/e.jpg': 4,
    });
    const r = await copy(src, join(dir, 'dst'), {
      filter: { glob: '*.jpg', ignore: ['cache/'], hidden: false },
    });
    expect(r.files).toBe(2);
    expect(await listAll(join(dir, 'dst'))).toEqual(['a.jpg', 'album', 'album/c.jpg']);
  });

  it('dryRun reports the plan and writes nothing', async () => {
    await makeTree(join(dir, 'src'), { a: 10, 'b/c': 20 });
    const progress: CopyProgress[] = [];
    const r = await copy(join(dir, 'src'), join(dir, 'dst'), {
      dryRun: true,
      onProgress: (p) => progress.push(p),
    });
    expect(r).toMatchObject({ files: 2, bytes: 30, dirs: 2 });
    expect(progress.at(-1)).toMatchObject({ totalFiles: 2, totalBytes: 30 });
    expect(await listAll(dir)).toEqual(['src', 'src/a', 'src/b', 'src/b/c']);
  });

  it('reports progress with totals up front, within a large file, and once at the end', async () => {
    const src = join(dir, 'src');
    // Large enough that a kernel copy of it outlasts a few 2 ms polls even on a fast machine (40 MiB did not).
    await makeTree(src, { 'big.bin': 64 * 1024 * 1024, 'small/1': 100, 'small/2': 200 });
    const progress: CopyProgress[] = [];
    await copy(src, join(dir, 'dst'), { progressIntervalMs: 0, onProgress: (p) => progress.push({ ...p }) });
    const total = 64 * 1024 * 1024 + 300;
    for (const p of progress) expect(p).toMatchObject({ totalBytes: total, totalFiles: 3 });
    const last = progress.at(-1);
    expect(last).toMatchObject({ bytesCopied: total, filesCompleted: 3 });
    // Within the big file: some report shows part of it copied before the file is complete.
    expect(
      progress.some(
        (p) => p.bytesCopied > 300 && p.bytesCopied < total && p.currentFile?.endsWith('big.bin'),
      ),
    ).toBe(true);
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.bytesCopied).toBeGreaterThanOrEqual(progress[i - 1]!.bytesCopied);
    }
  });

  it('throttles progress to the interval', async () => {
    await makeTree(
      join(dir, 'src'),
      Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, 10])),
    );
    let calls = 0;
    await copy(join(dir, 'src'), join(dir, 'dst'), { progressIntervalMs: 60_000, onProgress: () => calls++ });
    // The first update and the final report; everything between falls inside the interval.
    expect(calls).toBeLessThanOrEqual(2);
    expect(calls).toBeGreaterThanOrEqual(1);
  });

  it("reflink 'always' either clones or fails cleanly; 'auto' and 'never' copy the bytes", async () => {
    await makeTree(dir, { small: 5000, large: 9 * 1024 * 1024 });
    for (const name of ['small', 'large']) {
      for (const reflink of ['auto', 'never'] as const) {
        await copy(join(dir, name), join(dir, `${name}.${reflink}`), { reflink });
        expect(await digest(join(dir, `${name}.${reflink}`))).toBe(await digest(join(dir, name)));
      }
      const err = await copy(join(dir, name), join(dir, `${name}.always`), { reflink: 'always' }).catch(
        (e: unknown) => e,
      );
      if (err === undefined || !(err instanceof Error)) {
        // This filesystem clones (btrfs, XFS...): the clone is a full copy.
        expect(await digest(join(dir, `${name}.always`))).toBe(await digest(join(dir, name)));
      } else {
        expect(CopyError.is(err)).toBe(true);
        expect(['E_IO', 'E_CROSS_DEVICE']).toContain((err as CopyError).code);
        expect((err as Error).message).toMatch(/reflink/);
        await expect(stat(join(dir, `${name}.always`))).rejects.toThrow();
      }
    }
    expect(await tempFiles(dir)).toEqual([]);
  });
});

describe('move on one filesystem', () => {
  it('renames a directory and a file, keeping their content, and removes the sources', async () => {
    const src = join(dir, 'src');
    await makeTree(src, { a: 1000, 'b/c': 'c' });
    const before = await readTree(src);
    const r = await move(src, join(dir, 'moved'));
    expect(r).toMatchObject({ files: 2, bytes: 1001 });
    expect(await readTree(join(dir, 'moved'))).toEqual(before);
    await expect(stat(src)).rejects.toThrow();
  });

  it('merges into an existing directory, keeping conflicting sources in place', async () => {
    await makeTree(dir, { 'src/a': 'a', 'src/b/c': 'c', 'src/keep': 'mine', 'dst/src/keep': 'theirs' });
    const r = await move(join(dir, 'src'), join(dir, 'dst'), { overwrite: 'skip' });
    expect(r).toMatchObject({ files: 2, skipped: 1 });
    expect(await readFile(join(dir, 'dst/src/keep'), 'utf8')).toBe('theirs');
    expect(await listAll(join(dir, 'src'))).toEqual(['keep']);
    expect(await readFile(join(dir, 'dst/src/b/c'), 'utf8')).toBe('c');
  });

  it('renames a directory holding a FIFO in one step: the FIFO goes with it, as with mv, and is no failure', async () => {
    await makeTree(dir, { 'src/z': 'z' });
    execFileSync('mkfifo', [join(dir, 'src/p')]);
    const errors: CopyError[] = [];
    const r = await move(join(dir, 'src'), join(dir, 'moved'), {
      onError: (e) => {
        errors.push(e);
        return 'skip';
      },
    });
    expect(errors).toEqual([]);
    expect(r).toMatchObject({ files: 1, errors: 0 });
    expect(await listAll(join(dir, 'moved'))).toEqual(['p', 'z']);
    expect((await lstat(join(dir, 'moved/p'))).isFIFO()).toBe(true);
    await expect(stat(join(dir, 'src'))).rejects.toMatchObject({ code: 'ENOENT' });
    // Under the default onError ('throw') too: nothing to refuse.
    expect(await move(join(dir, 'moved'), join(dir, 'again'))).toMatchObject({ files: 1, errors: 0 });
    expect(await listAll(join(dir, 'again'))).toEqual(['p', 'z']);
  });

  it('moves only what the filter selects and leaves the rest', async () => {
    await makeTree(dir, { 'src/a.jpg': 'a', 'src/b.txt': 'b', 'src/sub/c.jpg': 'c' });
    await move(join(dir, 'src'), join(dir, 'dst'), { filter: { glob: '*.jpg' } });
    expect(await listAll(join(dir, 'dst'))).toEqual(['a.jpg', 'sub', 'sub/c.jpg']);
    expect(await listAll(join(dir, 'src'))).toEqual(['b.txt']);
  });
});

describe('concurrency', () => {
  it('copies many files with any concurrency, identically', async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 300; i++) files[`d${i % 7}/f${i}`] = (i * 37) % 5000;
    await makeTree(join(dir, 'src'), files);
    for (const concurrency of [1, 3, 32]) {
      const r = await copy(join(dir, 'src'), join(dir, `dst${concurrency}`), { concurrency });
      expect(r.files).toBe(300);
      expect(await readTree(join(dir, `dst${concurrency}`))).toEqual(await readTree(join(dir, 'src')));
    }
  });
});

describe('writes', () => {
  it('leaves no temp file after a successful copy, even on many overwrites', async () => {
    await makeTree(dir, { 'src/a': 'a', 'src/b': 'b' });
    for (let i = 0; i < 3; i++) await copy(`${dir}/src/.`, join(dir, 'out'), { overwrite: 'overwrite' });
    expect(await tempFiles(dir)).toEqual([]);
    await writeFile(join(dir, 'src/a'), 'changed');
    await copy(`${dir}/src/.`, join(dir, 'out'), { overwrite: 'overwrite' });
    expect(await readFile(join(dir, 'out/a'), 'utf8')).toBe('changed');
  });
});
