import { spawnSync } from 'node:child_process';
import {
  linkSync,
  mkdirSync,
  readFileSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type DedupProgress, findDuplicates, groupDuplicates, mergeFiles, scanDuplicates } from '@fsw/dedup';
import { hashFile } from '@fsw/hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytes, flip, put, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});
afterEach(() => cleanup());

const paths = (groups: readonly { paths: readonly string[] }[]) => groups.map((g) => [...g.paths]);
const pick = ({ size, mtimeMs, dev, ino }: Stats) => ({ size, mtimeMs, dev, ino });

/** A seeded PRNG, so that a failing generated case can be reproduced. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A generated tree full of traps: exact copies, same size with other bytes, same first 4 KiB with another tail,
 * same head and tail with another middle, empty files, unicode names; sizes around the 4 KiB and 8 KiB edges.
 */
function generateTraps(root: string, seed: number): void {
  const random = rng(seed);
  const sizes = [1, 2, 4095, 4096, 4097, 8191, 8192, 8193, 12_289, 100_000, 300_001];
  const originals: Buffer[] = [];
  for (let i = 0; i < 160; i++) {
    const folder = `d${Math.floor(random() * 6)}/${random() < 0.5 ? 'ünï' : 'plain'}`;
    const roll = random();
    let data: Buffer;
    if (originals.length === 0 || roll < 0.3) {
      data = bytes(sizes[Math.floor(random() * sizes.length)]!);
      originals.push(data);
    } else {
      const base = originals[Math.floor(random() * originals.length)]!;
      if (roll < 0.55) data = base;
      else if (roll < 0.65) data = flip(base, base.length - 1);
      else if (roll < 0.75) data = flip(base, base.length >> 1);
      else if (roll < 0.85) data = bytes(base.length);
      else if (roll < 0.9) data = Buffer.alloc(0);
      else data = flip(base, 0);
    }
    put(root, `${folder}/f ${i}.bin`, data);
  }
}

/** Parses `jdupes -r` output: groups of paths separated by blank lines. */
function parseJdupes(text: string): string[][] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line !== ''))
    .filter((group) => group.length > 0)
    .map((group) => group.sort())
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}

const hasJdupes = spawnSync('jdupes', ['--version'], { stdio: 'ignore' }).status === 0;

describe('findDuplicates', () => {
  // jdupes is installed by .ci/run and on the development machine; elsewhere the cross-check cannot run.
  it.skipIf(!hasJdupes)('finds exactly the groups jdupes -r finds on generated traps', async () => {
    for (const seed of [1, 2, 3]) {
      const root = join(dir, `seed${seed}`);
      generateTraps(root, seed);
      const ours = paths(await findDuplicates(root))
        .map((g) => g.sort())
        .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
      const jdupes = spawnSync('jdupes', ['-r', '-q', root], { encoding: 'utf8' });
      expect(jdupes.status).toBe(0);
      const theirs = parseJdupes(jdupes.stdout);
      expect(theirs.length).toBeGreaterThan(5);
      expect(ours).toEqual(theirs);
    }
  });

  it('walks several roots, counts a file under overlapping roots once, skips empty files by default', async () => {
    const data = bytes(5000);
    const a = put(dir, 'x/a', data);
    const b = put(dir, 'x/y/b', data);
    put(dir, 'x/empty1', '');
    put(dir, 'x/empty2', '');
    const groups = await findDuplicates([join(dir, 'x'), join(dir, 'x/y'), b]);
    expect(paths(groups)).toEqual([[a, b]]);
    expect(groups[0]!.wastedBytes).toBe(5000);
    const withEmpty = await findDuplicates(join(dir, 'x'), { minSize: 0 });
    expect(paths(withEmpty)).toEqual([
      [a, b],
      [join(dir, 'x/empty1'), join(dir, 'x/empty2')],
    ]);
  });

  it('honours minSize, maxSize and the walk filters', async () => {
    const small = bytes(100);
    const big = bytes(10_000);
    const s = [put(dir, 's1.txt', small), put(dir, 's2.txt', small)];
    const g = [put(dir, 'g1.jpg', big), put(dir, 'sub/g2.jpg', big)];
    put(dir, '.hidden/g3.jpg', big);
    expect(paths(await findDuplicates(dir, { minSize: 101 }))).toEqual([[join(dir, '.hidden/g3.jpg'), ...g]]);
    expect(paths(await findDuplicates(dir, { maxSize: 100 }))).toEqual([s]);
    expect(paths(await findDuplicates(dir, { glob: '*.txt' }))).toEqual([s]);
    expect(paths(await findDuplicates(dir, { hidden: false, minSize: 101 }))).toEqual([g]);
    expect(paths(await findDuplicates(dir, { maxDepth: 1, minSize: 101 }))).toEqual([]);
    expect(paths(await findDuplicates(dir, { ignore: 'sub/', hidden: false }))).toEqual([s]);
  });

  it('does not follow symlinks unless asked, and then counts a link as a name of its target', async () => {
    const data = bytes(7000);
    const a = put(dir, 'a', data);
    const b = put(dir, 'b', data);
    symlinkSync(a, join(dir, 'link-to-a'));
    mkdirSync(join(dir, 'sub'));
    symlinkSync(join(dir, 'sub'), join(dir, 'sub-link'));
    expect(paths(await findDuplicates(dir))).toEqual([[a, b]]);
    const followed = await findDuplicates(dir, { followSymlinks: true });
    expect(paths(followed)).toEqual([[a, b, join(dir, 'link-to-a')]]);
    expect(followed[0]!.wastedBytes).toBe(7000);
  });

  it('finds files with unicode, space and newline names through the walk', async () => {
    const data = bytes(4000);
    const a = put(dir, 'фото/ünï cødé 🐘.jpg', data);
    const b = put(dir, 'new\nline\ndir/na\nme', data);
    expect(paths(await findDuplicates(dir))).toEqual([[a, b].sort()]);
  });

  it('compares files whose names are not valid UTF-8, and gives their exact bytes', async () => {
    const data = bytes(20_000);
    const other = bytes(9000);
    const raw = (...parts: (string | number[])[]) =>
      Buffer.concat([
        Buffer.from(`${dir}/`),
        ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))),
      ]);
    mkdirSync(raw('d', [0xff]));
    const cafe = raw('d', [0xff], '/caf', [0xe9], '.jpg'); // Latin-1 names, as old archives have them
    writeFileSync(cafe, data);
    const copy = put(dir, 'copy.jpg', data);
    // Two names with the same lossy form, one file each, equal to each other.
    const e8 = raw('a', [0xe8]);
    const e9 = raw('a', [0xe9]);
    writeFileSync(e8, other);
    writeFileSync(e9, other);
    // A hard link with a Latin-1 name: one file, listed with both names.
    const linked = put(dir, 'linked', other.subarray(0, 5000));
    put(dir, 'linked-copy', other.subarray(0, 5000));
    linkSync(linked, raw('linked-', [0xe0]));

    const groups = await findDuplicates(dir);
    const byWaste = groups.map((g) => ({ paths: g.paths, raw: g.rawPaths }));
    expect(byWaste).toEqual([
      {
        paths: [join(dir, 'copy.jpg'), join(dir, 'd\uFFFD/caf\uFFFD.jpg')],
        raw: [undefined, cafe],
      },
      { paths: [join(dir, 'a\uFFFD'), join(dir, 'a\uFFFD')], raw: [e8, e9] },
      {
        paths: [linked, join(dir, 'linked-copy'), join(dir, 'linked-\uFFFD')],
        raw: [undefined, undefined, raw('linked-', [0xe0])],
      },
    ]);
    expect(copy).toBe(join(dir, 'copy.jpg'));
    expect(groups[0]!.digest).toBe((await hashFile(copy, { algorithm: 'blake3' })).digest);
    expect(groups[2]!.wastedBytes).toBe(5000);
    // The same through files listed by hand (`mergeFiles` with `rawPath`).
    const { size, mtimeMs, dev, ino } = statSync(cafe);
    const mine = mergeFiles([
      { path: join(dir, 'd\uFFFD/caf\uFFFD.jpg'), rawPath: cafe, size, mtimeMs, dev, ino },
      { path: copy, ...pick(statSync(copy)) },
    ]);
    expect((await groupDuplicates(mine))[0]!.rawPaths).toEqual([undefined, cafe]);
  });

  it('lists hard links together without counting them as waste', async () => {
    const data = bytes(7000);
    const a = put(dir, 'a', data);
    linkSync(a, join(dir, 'a2'));
    const b = put(dir, 'b', data);
    const scan = await scanDuplicates(dir);
    expect(paths(scan.groups)).toEqual([[a, join(dir, 'a2'), b]]);
    expect(scan.groups[0]!.wastedBytes).toBe(7000);
    expect(scan.files).toBe(2);
    // Only hard links of one file: nothing to deduplicate.
    rmSync(b);
    expect(await findDuplicates(dir)).toEqual([]);
  });

  it('reports walk and stage progress, and reads each candidate once with the cache on a second run', async () => {
    const data = bytes(50_000);
    put(dir, 'a', data);
    put(dir, 'b', data);
    const cache = join(dir, '..', `${join(dir).split('/').pop()}-cache.txt`);
    try {
      const reports: DedupProgress[] = [];
      const first = await scanDuplicates(dir, { cache, onProgress: (p) => reports.push(p) });
      expect(new Set(reports.map((r) => r.stage))).toEqual(
        new Set(['walk', 'stat', 'size', 'partial', 'full']),
      );
      expect(first.bytesRead).toBe(2 * 8192 + 2 * 50_000);
      const second = await scanDuplicates(dir, { cache });
      expect(second.bytesRead).toBe(0);
      expect(second.groups).toEqual(first.groups);
    } finally {
      rmSync(cache, { force: true });
    }
  });

  it('stats tens of thousands of files on two threads: same groups, and files gone or unreachable since the walk', async () => {
    // 170 folders of 100 files (the helper thread stats from 16,384 paths on): every stat slice (of 1,024) holds some
    // of the traps, so both threads meet them.
    const folders = 170;
    const pairs: string[][] = [];
    const gone: string[] = [];
    const unreachable: string[] = [];
    for (let d = 0; d < folders; d++) {
      for (let i = 0; i < 100; i++) {
        const data = bytes(20 + ((d * 100 + i) % 97));
        const file = put(dir, `d${d}/f${i}`, data);
        if (i === 0) pairs.push([file, put(dir, `d${d}/g${i}`, data)].sort());
        if (i === 1) gone.push(file);
        if (i === 2) {
          // A copy whose name is not valid UTF-8: its exact bytes travel to whichever thread stats and reads it.
          writeFileSync(Buffer.concat([Buffer.from(`${dir}/d${d}/f2-`), Buffer.from([0xe9])]), data);
          pairs.push([file, join(dir, `d${d}/f2-\uFFFD`)].sort());
        }
      }
      unreachable.push(put(dir, `d${d}/sub/f`, bytes(30)));
    }
    const errors: { code?: string; path?: string }[] = [];
    const scan = await scanDuplicates(dir, {
      onProgress: (p) => {
        if (p.stage !== 'walk' || p.done !== p.total) return;
        // After the walk listed them: a file removed, a folder replaced by a file (ENOTDIR below it).
        for (const file of gone) rmSync(file);
        for (let d = 0; d < folders; d++) {
          rmSync(join(dir, `d${d}/sub`), { recursive: true });
          writeFileSync(join(dir, `d${d}/sub`), 'now a file');
        }
      },
      onError: (e) => {
        errors.push(e);
        return 'skip';
      },
    });
    expect(paths(scan.groups).sort()).toEqual(pairs.sort());
    expect(scan.groups.filter((g) => g.rawPaths !== undefined)).toHaveLength(folders);
    expect(scan.skipped).toBe(2 * folders);
    const byCode = (code: string) =>
      errors
        .filter((e) => e.code === code)
        .map((e) => e.path)
        .sort();
    // The helper thread may stat while the folders are swapped (before or between the two calls above): a path below
    // one is then reported gone (E_NOT_FOUND) rather than unreachable.
    expect(errors.map((e) => e.path).sort()).toEqual([...gone, ...unreachable].sort());
    expect(byCode('E_NOT_FOUND')).toEqual(expect.arrayContaining(gone));
    expect([...byCode('E_NOT_FOUND'), ...byCode('E_NOT_DIR')]).toHaveLength(2 * folders);
    // Without onError, the failure is thrown (once every path is stat'ed).
    const rejected = scanDuplicates(dir, {
      onProgress: (p) => {
        if (p.stage === 'walk' && p.done === p.total) rmSync(join(dir, 'd7/f9'));
      },
    });
    await expect(rejected).rejects.toMatchObject({ code: 'E_NOT_FOUND', path: join(dir, 'd7/f9') });
    // Aborted while the two threads stat: the signal's reason, and the helper thread is let go.
    const controller = new AbortController();
    const reason = new Error('stop now');
    const aborted = scanDuplicates(dir, {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.stage === 'walk' && p.done === p.total) controller.abort(reason);
      },
    });
    await expect(aborted).rejects.toBe(reason);
  });

  it('throws a typed error for a missing root, and for bad options', async () => {
    await expect(findDuplicates(join(dir, 'nope'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(findDuplicates([])).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(findDuplicates(dir, { minSize: -1 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});

describe('README', () => {
  it('the example runs when pasted and finds the duplicates of a folder', async () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(code).toBeDefined();
    const data = bytes(5000);
    const a = put(dir, 'photos/a.jpg', data);
    const b = put(dir, 'photos/b.jpg', data);
    put(dir, 'photos/c.png', data); // same bytes, other extension: the custom stage keeps it apart
    const script = join(dir, 'dups.mjs');
    const entry = pathToFileURL(createRequire(import.meta.url).resolve('@fsw/dedup')).href;
    writeFileSync(script, code!.replace("from '@fsw/dedup'", `from '${entry}'`));
    const run = spawnSync(process.execPath, [script, join(dir, 'photos')], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(
      `5000 bytes wasted:\n  ${a}\n  ${b}\n1 paths to link, 5000 bytes to free, 0 skipped\n`,
    );
  });
});
