import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WalkError } from '@fsw/errors';
import { type WalkEntry, type WalkOptions, walk, walkAll } from '@fsw/walk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collect, makeTree, relsAll, relsOf, removeDir, tempDir } from './fixtures.js';

let root: string;

beforeEach(async () => {
  root = await tempDir();
});

afterEach(async () => {
  await removeDir(root);
});

const byPath = (a: WalkEntry, b: WalkEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

async function both(options: WalkOptions): Promise<string[]> {
  const streamed = await relsOf(root, options);
  expect(await relsAll(root, options)).toEqual(streamed);
  return streamed;
}

describe('ignore files', () => {
  beforeEach(async () => {
    await makeTree(root, {
      '.gitignore': '*.log\nbuild/\n',
      'app.log': '',
      'main.ts': '',
      'build/out.js': '',
      'sub/.gitignore': '!keep.log\n/local.ts\n',
      'sub/keep.log': '',
      'sub/drop.log': '',
      'sub/local.ts': '',
      'sub/deeper/local.ts': '',
      'sub/deeper/x.log': '',
      'other/keep.log': '',
    });
  });

  it('honours .gitignore per directory: nested files apply to their subtree, negation included', async () => {
    expect(await both({ ignoreFiles: ['.gitignore'], type: 'file' })).toEqual([
      '.gitignore',
      'main.ts',
      'sub/.gitignore',
      'sub/deeper/local.ts',
      'sub/keep.log',
    ]);
  });

  it('combines ignore files with ignore patterns and hidden: false', async () => {
    expect(await both({ ignoreFiles: ['.gitignore'], ignore: 'deeper', hidden: false })).toEqual([
      'main.ts',
      'other',
      'sub',
      'sub/keep.log',
    ]);
  });

  it('gives the same order in walk and walkAll with sort', async () => {
    const streamed = (await collect(root, { ignoreFiles: ['.gitignore'], sort: true })).map(
      (e) => e.relativePath,
    );
    const collected = (await walkAll(root, { ignoreFiles: ['.gitignore'], sort: true })).map(
      (e) => e.relativePath,
    );
    expect(collected).toEqual(streamed);
    expect(streamed).toEqual([
      '.gitignore',
      'main.ts',
      'other',
      'sub',
      'sub/.gitignore',
      'sub/deeper',
      'sub/deeper/local.ts',
      'sub/keep.log',
    ]);
  });
});

describe('symlinks', () => {
  beforeEach(async () => {
    await makeTree(root, {
      'real/file.txt': 'data',
      'real/loop': { link: '..' },
      'to-real': { link: 'real' },
      'to-file': { link: 'real/file.txt' },
      self: { link: '.' },
    });
  });

  it('does not follow symlinks by default', async () => {
    const entries = await collect(root);
    expect(
      entries
        .filter((e) => e.type === 'symlink')
        .map((e) => e.relativePath)
        .sort(),
    ).toEqual(['real/loop', 'self', 'to-file', 'to-real']);
  });

  it('follows symlinks, reporting each loop once and never entering it', async () => {
    const errors: WalkError[] = [];
    const options: WalkOptions = {
      followSymlinks: true,
      onError: (e) => {
        errors.push(e);
        return 'skip';
      },
    };
    const iterable = walk(root, options);
    const entries: WalkEntry[] = [];
    for await (const e of iterable) entries.push(e);
    const rels = entries.map((e) => e.relativePath).sort();
    expect(rels).toEqual([
      'real',
      'real/file.txt',
      'real/loop',
      'self',
      'to-file',
      'to-real',
      'to-real/file.txt',
      'to-real/loop',
    ]);
    expect(entries.find((e) => e.relativePath === 'to-file')?.type).toBe('file');
    expect(entries.find((e) => e.relativePath === 'to-real')?.type).toBe('dir');
    expect(errors.map((e) => [e.code, e.path]).sort()).toEqual(
      [
        ['E_LOOP', join(root, 'real/loop')],
        ['E_LOOP', join(root, 'self')],
        ['E_LOOP', join(root, 'to-real/loop')],
      ].sort(),
    );
    expect(iterable.skipped).toBe(3);
    const all = await walkAll(root, { ...options, onError: () => 'skip' });
    expect(all.skipped).toBe(3);
    expect(all.map((e) => e.relativePath).sort()).toEqual(rels);
  });

  it('throws E_LOOP by default when a followed symlink loops', async () => {
    await expect(collect(root, { followSymlinks: true })).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_LOOP',
    );
    await expect(walkAll(root, { followSymlinks: true })).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_LOOP',
    );
  });

  it('reports a broken symlink when following, and yields it as a symlink when skipped', async () => {
    await makeTree(root, { 'broken/dangling': { link: 'nowhere' } });
    const codes: string[] = [];
    const options: WalkOptions = {
      followSymlinks: true,
      ignore: ['real', 'self', 'to-*'],
      onError: (e) => {
        codes.push(`${e.code} ${e.path}`);
        return 'skip';
      },
    };
    const entries = await collect(root, options);
    expect(entries.map((e) => [e.relativePath, e.type]).sort()).toEqual([
      ['broken', 'dir'],
      ['broken/dangling', 'symlink'],
    ]);
    expect(codes).toEqual([`E_NOT_FOUND ${join(root, 'broken/dangling')}`]);
    expect((await walkAll(root, options)).map((e) => e.relativePath).sort()).toEqual([
      'broken',
      'broken/dangling',
    ]);
  });

  it('gives a followed symlink the stats of its target', async () => {
    const entries = await walkAll(root, {
      followSymlinks: true,
      stat: true,
      type: 'file',
      onError: () => 'skip',
    });
    const file = entries.find((e) => e.relativePath === 'to-file');
    expect(file?.size).toBe(4);
  });
});

describe('odd names', () => {
  it('yields names with newlines, spaces and unicode intact', async () => {
    const names = [
      'with\nnewline',
      ' lead and trail ',
      'ünïcødé-日本',
      'e\u0301-nfd',
      'back\\slash',
      '...',
      '-dash',
      '*star?',
    ];
    for (const name of names) await writeFile(join(root, name), name);
    await mkdir(join(root, 'dir\nwith newline'));
    await writeFile(join(root, 'dir\nwith newline', 'tab\tname'), 'x');
    const expected = [...names, 'dir\nwith newline', 'dir\nwith newline/tab\tname'].sort();
    expect(await both({})).toEqual(expected);
    for (const e of await walkAll(root, { type: 'file' }))
      expect(await readFile(e.path, 'utf8')).toBe(e.name === 'tab\tname' ? 'x' : e.name);
    expect(await both({ ignore: '...' })).toEqual(expected.filter((n) => n !== '...'));
  });

  it('yields names that are not valid UTF-8 with their exact bytes in rawPath', async () => {
    const rootBytes = Buffer.from(`${root}/`);
    const badFile = Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2e, 0x74, 0x78, 0x74]); // "bad\xff.txt"
    const badDir = Buffer.from([0x64, 0xc3, 0x28]); // "d" + an invalid 2-byte sequence
    await writeFile(Buffer.concat([rootBytes, badFile]), 'one');
    await mkdir(Buffer.concat([rootBytes, badDir]));
    await writeFile(Buffer.concat([rootBytes, badDir, Buffer.from('/inner.txt')]), 'two');
    await writeFile(join(root, 'good.txt'), 'three');
    await writeFile(join(root, 'real-\uFFFD.txt'), 'four');

    for (const options of [
      {},
      { sort: true },
      { stat: true },
      { stat: true, syncStat: true },
    ] as WalkOptions[]) {
      const streamed = (await collect(root, options)).sort(byPath);
      const collected = (await walkAll(root, options)).slice().sort(byPath);
      expect(collected).toEqual(streamed);
      expect(streamed.map((e) => e.relativePath)).toEqual(
        ['bad\uFFFD.txt', 'd\uFFFD(', 'd\uFFFD(/inner.txt', 'good.txt', 'real-\uFFFD.txt'].sort(),
      );
      const file = streamed.find((e) => e.name === 'bad\uFFFD.txt');
      expect(file?.rawPath).toEqual(Buffer.concat([rootBytes, badFile]));
      expect(file?.rawRelativePath).toEqual(badFile);
      const inner = streamed.find((e) => e.name === 'inner.txt');
      expect(inner?.rawRelativePath).toEqual(Buffer.concat([badDir, Buffer.from('/inner.txt')]));
      expect(inner?.depth).toBe(2);
      expect(await readFile(inner?.rawPath ?? '', 'utf8')).toBe('two');
      if (options.stat) expect(inner?.size).toBe(3);
      // Valid UTF-8 names (even holding U+FFFD itself) have no rawPath.
      expect(streamed.find((e) => e.name === 'good.txt')?.rawPath).toBeUndefined();
      expect(streamed.find((e) => e.name === 'real-\uFFFD.txt')?.rawPath).toBeUndefined();
    }
  });
});

describe('entries that vanish mid-walk', () => {
  it('reports a directory removed after it was yielded but before it was read, as onError decides', async () => {
    await makeTree(root, { 'a/x': '', 'b/y': '' });
    const errors: string[] = [];
    const entries: string[] = [];
    const iterable = walk(root, {
      sort: true,
      onError: (e) => {
        errors.push(`${e.code} ${e.path}`);
        return 'skip';
      },
    });
    for await (const e of iterable) {
      entries.push(e.relativePath);
      if (e.relativePath === 'a') await removeDir(join(root, 'a'));
    }
    expect(entries).toEqual(['a', 'b', 'b/y']);
    expect(errors).toEqual([`E_NOT_FOUND ${join(root, 'a')}`]);
    expect(iterable.skipped).toBe(1);

    await makeTree(root, { 'a/x': '' });
    const strict = async () => {
      for await (const e of walk(root, { sort: true })) {
        if (e.relativePath === 'a') await removeDir(join(root, 'a'));
      }
    };
    await expect(strict()).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_NOT_FOUND' && e.path === join(root, 'a'),
    );
  });
});

describe('abort', () => {
  it('throws signal.reason from walk and walkAll when aborted before or during the walk', async () => {
    await makeTree(root, { 'a/b/c.txt': '' });
    const reason = new Error('stop now');
    const aborted = AbortSignal.abort(reason);
    await expect(collect(root, { signal: aborted })).rejects.toBe(reason);
    await expect(walkAll(root, { signal: aborted })).rejects.toBe(reason);
  });

  it('aborts promptly while a huge directory is being read', async () => {
    await mkdir(join(root, 'huge'));
    for (let i = 0; i < 3000; i += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, j) => writeFile(join(root, 'huge', `f${i + j}`), '')),
      );
    }
    let controller = new AbortController();
    const reason = new Error('enough');
    let seen = 0;
    const run = async (sort: boolean) => {
      for await (const _ of walk(root, { signal: controller.signal, sort })) {
        seen++;
        if (seen === 1) controller.abort(reason);
      }
    };
    await expect(run(false)).rejects.toBe(reason);
    expect(seen).toBe(1);
    // With sort, a directory is listed whole before it is walked: the abort still ends it at the next entry.
    controller = new AbortController();
    seen = 0;
    await expect(run(true)).rejects.toBe(reason);
    expect(seen).toBe(1);

    const second = new AbortController();
    const pending = walkAll(root, { signal: second.signal });
    setImmediate(() => second.abort(reason));
    await expect(pending).rejects.toBe(reason);
  });
});
