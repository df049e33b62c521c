import { chmod, lstat, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { WalkError } from '@fsw/errors';
import { type WalkOptions, walk, walkAll } from '@fsw/walk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  canRunUnprivileged,
  collect,
  makeTree,
  relsAll,
  relsOf,
  removeDir,
  runUnprivileged,
  tempDir,
} from './fixtures.js';

// Root ignores permission bits, so these tests run a child as `nobody`; skipped only where that user cannot reach
// the built package (e.g. a checkout under a private home directory).
const unprivileged = await canRunUnprivileged();

let root: string;

beforeEach(async () => {
  root = await tempDir();
  await makeTree(root, {
    'a.txt': 'a',
    'b.md': 'bb',
    '.hidden': 'h',
    '.dotdir/inner.txt': 'i',
    'src/index.ts': 'x',
    'src/util/deep.ts': 'xyz',
    'src/util/deeper/leaf.ts': 'leaf',
    'empty/': null,
    'link-to-a': { link: 'a.txt' },
  });
});

afterEach(async () => {
  await removeDir(root);
});

const ALL = [
  '.dotdir',
  '.dotdir/inner.txt',
  '.hidden',
  'a.txt',
  'b.md',
  'empty',
  'link-to-a',
  'src',
  'src/index.ts',
  'src/util',
  'src/util/deep.ts',
  'src/util/deeper',
  'src/util/deeper/leaf.ts',
];

describe('walk', () => {
  it('yields every entry below the root with path, relativePath, name, depth and type', async () => {
    const entries = await collect(root);
    expect(entries.map((e) => e.relativePath).sort()).toEqual(ALL);
    for (const e of entries) {
      expect(e.path).toBe(`${root}/${e.relativePath}`);
      expect(e.name).toBe(e.relativePath.split('/').pop());
      expect(e.depth).toBe(e.relativePath.split('/').length);
    }
    const byRel = new Map(entries.map((e) => [e.relativePath, e]));
    expect(byRel.get('a.txt')?.type).toBe('file');
    expect(byRel.get('src')?.type).toBe('dir');
    expect(byRel.get('link-to-a')?.type).toBe('symlink');
    expect(byRel.get('a.txt')?.size).toBeUndefined();
  });

  it('joins paths onto the root as given, like find', async () => {
    const rel = relative(process.cwd(), root);
    const entries = await collect(`${rel}/`, { type: 'file', glob: 'a.txt' });
    expect(entries.map((e) => e.path)).toEqual([`${rel}/a.txt`]);
  });

  it('filters by type', async () => {
    expect(await relsOf(root, { type: 'dir' })).toEqual([
      '.dotdir',
      'empty',
      'src',
      'src/util',
      'src/util/deeper',
    ]);
    expect(await relsOf(root, { type: 'symlink' })).toEqual(['link-to-a']);
    expect(await relsOf(root, { type: 'file', hidden: false })).toEqual([
      'a.txt',
      'b.md',
      'src/index.ts',
      'src/util/deep.ts',
      'src/util/deeper/leaf.ts',
    ]);
  });

  it('matches globs against the relative path, and slash-less globs against the base name', async () => {
    expect(await relsOf(root, { glob: '*.ts' })).toEqual([
      'src/index.ts',
      'src/util/deep.ts',
      'src/util/deeper/leaf.ts',
    ]);
    expect(await relsOf(root, { glob: 'src/*.ts' })).toEqual(['src/index.ts']);
    expect(await relsOf(root, { glob: ['*.md', 'src/util/**/*.ts'] })).toEqual([
      'b.md',
      'src/util/deep.ts',
      'src/util/deeper/leaf.ts',
    ]);
  });

  it('limits depth', async () => {
    expect(await relsOf(root, { maxDepth: 0 })).toEqual([]);
    expect(await relsOf(root, { maxDepth: 1 })).toEqual(ALL.filter((r) => !r.includes('/')));
    expect(await relsOf(root, { maxDepth: 2 })).toEqual(ALL.filter((r) => r.split('/').length <= 2));
  });

  it('leaves out dotfiles and never enters dot-directories with hidden: false', async () => {
    expect(await relsOf(root, { hidden: false })).toEqual(ALL.filter((r) => !r.startsWith('.')));
  });

  it('applies gitignore-style ignore patterns, excluding whole directories', async () => {
    expect(await relsOf(root, { ignore: ['util/', '*.md'] })).toEqual(
      ALL.filter((r) => !r.startsWith('src/util') && r !== 'b.md'),
    );
    expect(await relsOf(root, { ignore: 'src/util/deeper' })).toEqual(
      ALL.filter((r) => !r.startsWith('src/util/deeper')),
    );
  });

  it('adds lstat fields with stat: true', async () => {
    const entries = await collect(root, { stat: true });
    for (const e of entries) {
      const s = await lstat(e.path);
      expect(e.size).toBe(s.size);
      expect(e.mtimeMs).toBe(s.mtimeMs);
      expect(e.mode).toBe(s.mode);
      expect(e.ino).toBe(s.ino);
      expect(e.dev).toBe(s.dev);
      expect(e.nlink).toBe(s.nlink);
    }
    expect(entries.find((e) => e.relativePath === 'src/util/deep.ts')?.size).toBe(3);
  });

  it('reports progress totals, ending with the final counts', async () => {
    for (const run of [
      (onProgress: WalkOptions['onProgress']) => collect(root, { onProgress }),
      (onProgress: WalkOptions['onProgress']) => walkAll(root, { onProgress }),
      (onProgress: WalkOptions['onProgress']) => walkAll(root, { onProgress, stat: true, type: 'file' }),
    ]) {
      const reports: { entries: number; directories: number; skipped: number }[] = [];
      const entries = await run((p) => reports.push({ ...p }));
      expect(reports.length).toBeGreaterThan(0);
      expect(reports.at(-1)).toEqual({ entries: entries.length, directories: 6, skipped: 0 });
      for (let i = 1; i < reports.length; i++) {
        expect(reports[i]?.entries).toBeGreaterThanOrEqual(reports[i - 1]?.entries ?? 0);
      }
    }
  });

  it('hands out the same entries in batches', async () => {
    for (const options of [{}, { sort: true }, { type: 'file' as const }]) {
      const flat: string[] = [];
      for await (const batch of walk(root, options).batches()) {
        expect(batch.length).toBeGreaterThan(0);
        for (const e of batch) flat.push(e.relativePath);
      }
      const entries = (await collect(root, options)).map((e) => e.relativePath);
      expect(options.sort ? flat : flat.sort()).toEqual(options.sort ? entries : entries.sort());
    }
    const file = join(root, 'a.txt');
    const batches: string[][] = [];
    for await (const batch of walk(file).batches()) batches.push(batch.map((e) => e.relativePath));
    expect(batches).toEqual([['a.txt']]);
  });

  it('gives the same stats with syncStat', async () => {
    const byRel = (a: { relativePath: string }, b: { relativePath: string }) =>
      a.relativePath < b.relativePath ? -1 : 1;
    const async = (await collect(root, { stat: true })).sort(byRel);
    const sync = (await collect(root, { stat: true, syncStat: true })).sort(byRel);
    expect(sync).toEqual(async);
    expect(sync.find((e) => e.relativePath === 'src/util/deep.ts')?.size).toBe(3);
  });

  it('sorts depth-first with siblings in name order, the same in walk and walkAll', async () => {
    const streamed = (await collect(root, { sort: true })).map((e) => e.relativePath);
    expect(streamed).toEqual(ALL);
    const collected = (await walkAll(root, { sort: true })).map((e) => e.relativePath);
    expect(collected).toEqual(ALL);
  });

  it('yields a root that is a file as the one entry', async () => {
    const file = join(root, 'src/index.ts');
    const entries = await collect(file);
    expect(entries).toEqual([
      { path: file, relativePath: 'index.ts', name: 'index.ts', depth: 0, type: 'file' },
    ]);
    expect((await walkAll(file)).map((e) => e.path)).toEqual([file]);
    expect(await relsOf(file, { type: 'dir' })).toEqual([]);
  });

  it('throws WalkError E_NOT_FOUND for a missing root, from walk and walkAll', async () => {
    const missing = join(root, 'nope');
    const streamed = collect(missing);
    await expect(streamed).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_NOT_FOUND' && e.path === missing,
    );
    await expect(walkAll(missing)).rejects.toSatisfy((e) => WalkError.is(e) && e.code === 'E_NOT_FOUND');
  });

  it('rejects bad options with E_INVALID_ARGUMENT', async () => {
    expect(() => walk(root, { maxDepth: -1 })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    await expect(walkAll(root, { concurrency: 0 })).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_INVALID_ARGUMENT',
    );
  });

  it('streams: the first entries arrive before the crawl has read every directory', async () => {
    const dirs = Array.from({ length: 1500 }, (_, i) => `s${i}`);
    // Each directory adds entries when read, so the bounded buffer fills long before the last one is read.
    await Promise.all(dirs.map((d) => makeTree(root, { [`${d}/x`]: '', [`${d}/y`]: '', [`${d}/z`]: '' })));
    // Directories wait on a stack, so the first one listed is read last.
    const firstListed = (await readdir(root)).find((n) => n.startsWith('s')) as string;
    const seen = new Set<string>();
    for await (const e of walk(root, { concurrency: 1 })) {
      if (seen.size === 0) await writeFile(join(root, firstListed, 'late'), '');
      seen.add(e.relativePath);
    }
    expect(seen.has(`${firstListed}/late`)).toBe(true);
    expect(seen.size).toBe(ALL.length + 6001);
  });

  it('stops cleanly when the consumer breaks out early', async () => {
    await Promise.all(
      Array.from({ length: 30 }, (_, d) => {
        const files: Record<string, string> = {};
        for (let i = d; i < 3000; i += 30) files[`big/d${d}/f${i}.txt`] = '';
        return makeTree(root, files);
      }),
    );
    let seen = 0;
    for await (const _ of walk(root, { concurrency: 2 })) {
      seen++;
      if (seen === 10) break;
    }
    expect(seen).toBe(10);
    expect((await relsOf(root)).length).toBe(ALL.length + 3000 + 31);
  });
});

describe('walk and walkAll agree', () => {
  const cases: WalkOptions[] = [
    {},
    { type: 'file' },
    { type: 'dir', maxDepth: 2 },
    { glob: '*.ts', hidden: false },
    { ignore: ['deeper/'], type: 'file' },
    { stat: true },
    { stat: true, syncStat: true, type: 'file' },
    { stat: true, syncStat: true, syncReaddir: true, ignore: ['deeper/'] },
    { syncReaddir: true, glob: '*.ts', hidden: false },
    { concurrency: 1 },
  ];
  for (const options of cases) {
    it(`gives the same entries for ${JSON.stringify(options)}`, async () => {
      const many: Record<string, string> = {};
      for (let i = 0; i < 600; i++)
        many[`gen/d${i % 13}/e${i % 5}/f${i}.${i % 2 ? 'ts' : 'js'}`] = 'x'.repeat(i % 7);
      await makeTree(root, many);
      const streamed = (await collect(root, options)).sort((a, b) => (a.path < b.path ? -1 : 1));
      const collected = (await walkAll(root, options)).slice().sort((a, b) => (a.path < b.path ? -1 : 1));
      expect(streamed.length).toBeGreaterThan(0);
      expect(collected).toEqual(streamed);
    });
  }
});

describe.skipIf(!unprivileged)(
  'permissions (run as an unprivileged user, since root ignores mode bits)',
  () => {
    beforeEach(async () => {
      await makeTree(root, { 'locked/secret.txt': 's', 'open/ok.txt': 'o' });
      await chmod(root, 0o755);
      await chmod(join(root, 'locked'), 0o000);
    });
    afterEach(async () => {
      await chmod(join(root, 'locked'), 0o755);
    });

    it('throws E_PERMISSION for an unreadable root', async () => {
      const r = await runUnprivileged(
        `for (const fn of [async () => { for await (const _ of walk(root + '/locked')); }, () => walkAll(root + '/locked')]) {
        try { await fn(); console.log('no error'); } catch (e) { console.log(e.code, e.path === root + '/locked'); }
      }`,
        root,
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('E_PERMISSION true\nE_PERMISSION true\n');
    });

    it('throws an unreadable directory below the root by default, and counts it when onError skips', async () => {
      const r = await runUnprivileged(
        `const out = {};
      try { for await (const _ of walk(root)); out.walk = 'no error'; } catch (e) { out.walk = e.code + ' ' + e.path; }
      try { await walkAll(root); out.walkAll = 'no error'; } catch (e) { out.walkAll = e.code + ' ' + e.path; }
      const seen = [];
      const it = walk(root, { onError: (e) => { seen.push(e.code); return 'skip'; } });
      const names = [];
      for await (const e of it) names.push(e.relativePath);
      out.skipped = it.skipped; out.seen = seen; out.names = names.sort();
      const all = await walkAll(root, { onError: () => 'skip' });
      out.allSkipped = all.skipped; out.allNames = all.map((e) => e.relativePath).sort();
      try { for await (const _ of walk(root, { syncReaddir: true })); out.sync = 'no error'; } catch (e) { out.sync = e.code + ' ' + e.path; }
      const syncIt = walk(root, { syncReaddir: true, onError: () => 'skip' });
      const syncNames = [];
      for await (const e of syncIt) syncNames.push(e.relativePath);
      out.syncSkipped = syncIt.skipped; out.syncNames = syncNames.sort();
      console.log(JSON.stringify(out));`,
        root,
      );
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout);
      expect(out.walk).toBe(`E_PERMISSION ${root}/locked`);
      expect(out.walkAll).toBe(`E_PERMISSION ${root}/locked`);
      expect(out.seen).toEqual(['E_PERMISSION']);
      expect(out.skipped).toBe(1);
      expect(out.names).toEqual(
        [
          '.dotdir',
          '.dotdir/inner.txt',
          '.hidden',
          ...ALL.slice(3, 7),
          'locked',
          'open',
          'open/ok.txt',
          ...ALL.slice(7),
        ].sort(),
      );
      expect(out.allSkipped).toBe(1);
      expect(out.allNames).toEqual(out.names);
      expect(out.sync).toBe(`E_PERMISSION ${root}/locked`);
      expect(out.syncSkipped).toBe(1);
      expect(out.syncNames).toEqual(out.names);
    });

    it('never reads a directory excluded by ignore, an ignore file, hidden: false or maxDepth', async () => {
      // Reading any of these locked directories would throw (onError defaults to 'throw').
      await makeTree(root, {
        '.locked-dot/x': '',
        'sub/.gitignore': 'deep-locked/\n',
        'sub/deep-locked/x': '',
      });
      const extra = [join(root, '.locked-dot'), join(root, 'sub/deep-locked')];
      for (const dir of extra) await chmod(dir, 0o000);
      try {
        const r = await runUnprivileged(
          `const cases = [
            { ignore: ['locked', '.locked-dot', 'deep-locked'] },
            { maxDepth: 1 },
            { hidden: false, ignore: ['locked', 'deep-locked'] },
            { ignoreFiles: ['.gitignore'], ignore: ['locked', '.locked-dot'] },
          ];
          const out = [];
          for (const options of cases) {
            try {
              const names = [];
              for await (const e of walk(root, options)) names.push(e.relativePath);
              const all = await walkAll(root, options);
              out.push(names.length > 0 && all.length === names.length ? 'ok' : 'differs');
            } catch (e) {
              out.push(e.code + ' ' + e.path);
            }
          }
          console.log(out.join(' '));`,
          root,
        );
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('ok ok ok ok\n');
      } finally {
        for (const dir of extra) await chmod(dir, 0o755);
      }
    });
  },
);

describe('writes', () => {
  it('sees files written before the walk', async () => {
    await writeFile(join(root, 'new.txt'), 'n');
    expect(await relsAll(root, { glob: 'new.txt' })).toEqual(['new.txt']);
  });
});
