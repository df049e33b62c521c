import {
  constants,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import { join } from 'node:path';
import { type DedupeAction, type DuplicateGroup, dedupe, findDuplicates } from '@fsw/dedup';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { bytes, flip, put, tempDir } from './helpers.js';

// `rename` passes through unless a test makes it fail: a failure after the temporary name exists, which nothing on a
// real filesystem provokes reliably when the tests run as root.
const hooks = vi.hoisted(() => ({
  rename: undefined as ((from: unknown, to: unknown) => Error | undefined) | undefined,
}));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  return {
    ...actual,
    rename: async (from: Parameters<typeof actual.rename>[0], to: Parameters<typeof actual.rename>[1]) => {
      const error = hooks.rename?.(from, to);
      if (error) throw error;
      return actual.rename(from, to);
    },
  };
});

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  hooks.rename = undefined;
});
afterEach(() => cleanup());

/** `dir/` followed by `parts` (strings as UTF-8, numbers as single bytes): the exact bytes of a name. */
function rawName(...parts: (string | number)[]): Buffer {
  return Buffer.concat([
    Buffer.from(`${dir}/`),
    ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from([p]))),
  ]);
}

/** The names in `folder`, as their exact bytes (latin1 strings: one character per byte), sorted. */
function listing(folder: Buffer | string): string[] {
  return readdirSync(folder, { encoding: 'buffer' })
    .map((n) => n.toString('latin1'))
    .sort();
}

const ino = (path: Buffer | string) => lstatSync(path).ino;

/**
 * Four copies: `a\xe9` (kept: first in sort order), `b\xe8` and `b\xe9` (one lossy form, `b\uFFFD`, for two files),
 * `c` (a valid name), and `sub\xff/d\xfe` (a folder whose name is not valid UTF-8 either).
 */
async function fixture() {
  const data = bytes(20_000);
  const kept = rawName('a', 0xe9);
  const b8 = rawName('b', 0xe8);
  const b9 = rawName('b', 0xe9);
  const c = put(dir, 'c', data);
  const sub = rawName('sub', 0xff);
  const d = Buffer.concat([sub, Buffer.from('/d'), Buffer.from([0xfe])]);
  mkdirSync(sub);
  for (const p of [kept, b8, b9, d]) writeFileSync(p, data);
  const groups = await findDuplicates(dir);
  expect(groups).toHaveLength(1);
  expect(groups[0]!.paths).toEqual([
    join(dir, 'a\uFFFD'),
    join(dir, 'b\uFFFD'),
    join(dir, 'b\uFFFD'),
    c,
    join(dir, 'sub\uFFFD', 'd\uFFFD'),
  ]);
  expect(groups[0]!.rawPaths).toEqual([kept, b8, b9, undefined, d]);
  return { data, kept, b8, b9, c, sub, d, groups, keptIno: ino(kept) };
}

/** What `done` lists for each replaced copy of the fixture. */
function doneOf(f: Awaited<ReturnType<typeof fixture>>, action: DedupeAction) {
  const keptPath = join(dir, 'a\uFFFD');
  const keptRawPath = f.kept;
  return [
    { path: join(dir, 'b\uFFFD'), rawPath: f.b8, action, keptPath, keptRawPath },
    { path: join(dir, 'b\uFFFD'), rawPath: f.b9, action, keptPath, keptRawPath },
    { path: f.c, action, keptPath, keptRawPath },
    { path: join(dir, 'sub\uFFFD', 'd\uFFFD'), rawPath: f.d, action, keptPath, keptRawPath },
  ];
}

describe('dedupe on names that are not valid UTF-8', () => {
  it('hardlink: every copy becomes a hard link to the kept file, through the exact bytes', async () => {
    const f = await fixture();
    const result = await dedupe(f.groups, { action: 'hardlink' });
    expect(result.skipped).toEqual([]);
    expect(result.done).toEqual(doneOf(f, 'hardlink'));
    expect(result.bytesSaved).toBe(80_000);
    for (const p of [f.b8, f.b9, f.c, f.d]) {
      expect(lstatSync(p).isFile()).toBe(true);
      expect(ino(p)).toBe(f.keptIno);
    }
    expect(lstatSync(f.kept).nlink).toBe(5);
    expect(readFileSync(f.kept).equals(f.data)).toBe(true);
    // No temporary names left behind, in either folder.
    expect(listing(dir)).toEqual(['a\xe9', 'b\xe8', 'b\xe9', 'c', 'sub\xff']);
    expect(listing(f.sub)).toEqual(['d\xfe']);
  });

  it('symlink: every copy becomes a relative symlink whose target is the exact bytes of the kept name', async () => {
    const f = await fixture();
    const result = await dedupe(f.groups, { action: 'symlink' });
    expect(result.skipped).toEqual([]);
    expect(result.done).toEqual(doneOf(f, 'symlink'));
    for (const p of [f.b8, f.b9, f.c]) {
      expect(lstatSync(p).isSymbolicLink()).toBe(true);
      expect(readlinkSync(p, { encoding: 'buffer' })).toEqual(Buffer.from([0x61, 0xe9]));
      expect(readFileSync(p).equals(f.data)).toBe(true);
    }
    expect(readlinkSync(f.d, { encoding: 'buffer' })).toEqual(Buffer.from([0x2e, 0x2e, 0x2f, 0x61, 0xe9]));
    expect(readFileSync(f.d).equals(f.data)).toBe(true);
    expect(lstatSync(f.kept).isFile()).toBe(true);
    expect(ino(f.kept)).toBe(f.keptIno);
    expect(readFileSync(f.kept).equals(f.data)).toBe(true);
    expect(listing(dir)).toEqual(['a\xe9', 'b\xe8', 'b\xe9', 'c', 'sub\xff']);
    expect(listing(f.sub)).toEqual(['d\xfe']);
  });

  it('delete: every copy is gone, the kept file intact', async () => {
    const f = await fixture();
    const result = await dedupe(f.groups, { action: 'delete' });
    expect(result.skipped).toEqual([]);
    expect(result.done).toEqual(doneOf(f, 'delete'));
    expect(listing(dir)).toEqual(['a\xe9', 'sub\xff']);
    expect(listing(f.sub)).toEqual([]);
    expect(ino(f.kept)).toBe(f.keptIno);
    expect(readFileSync(f.kept).equals(f.data)).toBe(true);
  });

  it('hardlink: a copy whose raw name is 250 bytes long is replaced too (the temp name repeats only part of it)', async () => {
    const data = bytes(3_000);
    const kept = put(dir, 'kept', data);
    const long = rawName(...Array.from({ length: 250 }, (_, i) => (i % 2 === 0 ? 0xe9 : 0x78)));
    writeFileSync(long, data);
    const result = await dedupe(await findDuplicates(dir), { action: 'hardlink' });
    expect(result.skipped).toEqual([]);
    expect(ino(long)).toBe(ino(kept));
    expect(listing(dir)).toEqual([long.subarray(dir.length + 1).toString('latin1'), 'kept'].sort());
  });

  it('dry run: lists every copy with its bytes and changes nothing', async () => {
    const f = await fixture();
    const before = [f.b8, f.b9, f.c, f.d].map(ino);
    const result = await dedupe(f.groups, { action: 'delete', dryRun: true });
    expect(result.done).toEqual(doneOf(f, 'delete'));
    expect(result.bytesSaved).toBe(80_000);
    expect([f.b8, f.b9, f.c, f.d].map(ino)).toEqual(before);
  });

  it('reflink: clones through the exact bytes where the filesystem can, else says so and leaves no temporary name', async () => {
    const data = bytes(20_000);
    const kept = rawName('a', 0xe9);
    const copy = rawName('b', 0xe8);
    writeFileSync(kept, data);
    writeFileSync(copy, data);
    let supported = true;
    try {
      copyFileSync(kept, join(dir, 'probe'), constants.COPYFILE_FICLONE_FORCE);
      rmSync(join(dir, 'probe'));
    } catch {
      supported = false;
    }
    const before = ino(copy);
    const result = await dedupe(await findDuplicates(dir), { action: 'reflink' });
    if (supported) {
      expect(result.done).toEqual([
        expect.objectContaining({ path: join(dir, 'b\uFFFD'), rawPath: copy, keptRawPath: kept }),
      ]);
      expect(ino(copy)).not.toBe(before);
    } else {
      expect(result.done).toEqual([]);
      expect(result.skipped).toEqual([
        expect.objectContaining({
          path: join(dir, 'b\uFFFD'),
          rawPath: copy,
          code: 'E_IO',
          reason: expect.stringContaining('does not support reflinks'),
        }),
      ]);
      expect(ino(copy)).toBe(before);
    }
    expect(readFileSync(copy).equals(data)).toBe(true);
    expect(readFileSync(kept).equals(data)).toBe(true);
    expect(listing(dir)).toEqual(['a\xe9', 'b\xe8']);
  });

  for (const action of ['hardlink', 'symlink', 'delete'] as const) {
    it(`${action}: of two names with one lossy form, acts on the duplicate and leaves the other and a file named by that lossy form byte-identical`, async () => {
      const data = bytes(20_000);
      const other = flip(data, 10_000);
      const kept = put(dir, 'a', data);
      const copy = rawName('f', 0xe9);
      const notCopy = rawName('f', 0xe8);
      writeFileSync(copy, data);
      writeFileSync(notCopy, other);
      const groups: DuplicateGroup[] = await findDuplicates(dir);
      expect(groups).toHaveLength(1);
      expect(groups[0]!.paths).toEqual([kept, join(dir, 'f\uFFFD')]);
      expect(groups[0]!.rawPaths).toEqual([undefined, copy]);
      // A file whose valid name is the lossy form itself, equal to the kept one: acting through the string would
      // replace (or delete) this one and leave the duplicate as it was.
      const decoy = put(dir, 'f\uFFFD', data);
      const untouched = [notCopy, decoy].map((p) => ({ p, ino: ino(p), data: readFileSync(p) }));

      const result = await dedupe(groups, { action });
      expect(result.skipped).toEqual([]);
      expect(result.done).toEqual([{ path: join(dir, 'f\uFFFD'), rawPath: copy, action, keptPath: kept }]);
      if (action === 'hardlink') expect(ino(copy)).toBe(ino(kept));
      if (action === 'symlink') expect(readlinkSync(copy, { encoding: 'buffer' })).toEqual(Buffer.from('a'));
      if (action === 'delete') expect(() => lstatSync(copy)).toThrow(/ENOENT/);
      for (const u of untouched) {
        expect(lstatSync(u.p).isFile()).toBe(true);
        expect(ino(u.p)).toBe(u.ino);
        expect(readFileSync(u.p).equals(u.data)).toBe(true);
      }
      expect(readFileSync(kept).equals(data)).toBe(true);
      expect(listing(dir)).toEqual(
        [
          'a',
          'f\xe8',
          ...(action === 'delete' ? [] : ['f\xe9']),
          Buffer.from('f\uFFFD').toString('latin1'),
        ].sort(),
      );
    });
  }

  it('skips a copy that changed since the scan, naming it by its lossy form and its bytes, and leaves it untouched', async () => {
    const data = bytes(20_000);
    const kept = put(dir, 'a', data);
    const copy = rawName('b', 0xe9);
    writeFileSync(copy, data);
    const groups = await findDuplicates(dir);
    const changed = flip(data, 10_000);
    writeFileSync(copy, changed);
    const before = ino(copy);
    const result = await dedupe(groups, { action: 'hardlink' });
    expect(result.done).toEqual([]);
    expect(result.skipped).toEqual([
      expect.objectContaining({
        path: join(dir, 'b\uFFFD'),
        rawPath: copy,
        code: 'E_CHANGED',
        reason: `changed since the scan: ${join(dir, 'b\uFFFD')} no longer equals ${kept}`,
      }),
    ]);
    expect(result.skipped[0]!.error.path).toBe(join(dir, 'b\uFFFD'));
    expect(ino(copy)).toBe(before);
    expect(readFileSync(copy).equals(changed)).toBe(true);
    expect(listing(dir)).toEqual(['a', 'b\xe9']);
  });

  for (const action of ['hardlink', 'symlink'] as const) {
    it(`${action}: a failed rename removes the temporary name, made of the exact bytes in the copy's folder`, async () => {
      const data = bytes(20_000);
      const kept = rawName('a', 0xe9);
      const sub = rawName('sub', 0xff);
      mkdirSync(sub);
      const copy = Buffer.concat([sub, Buffer.from('/b'), Buffer.from([0xe8])]);
      writeFileSync(kept, data);
      writeFileSync(copy, data);
      const groups = await findDuplicates(dir);
      const temps: Buffer[] = [];
      hooks.rename = (from) => {
        // The temporary name exists by now: its folder holds it beside the copy.
        expect(listing(sub)).toHaveLength(2);
        temps.push(from as Buffer);
        return Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
      };
      const before = ino(copy);
      const result = await dedupe(groups, { action });
      expect(result.done).toEqual([]);
      expect(result.skipped).toEqual([
        expect.objectContaining({
          path: join(dir, 'sub\uFFFD', 'b\uFFFD'),
          rawPath: copy,
          code: 'E_IO',
          reason: expect.stringContaining(join(dir, 'sub\uFFFD', 'b\uFFFD')),
        }),
      ]);
      expect(temps).toHaveLength(1);
      expect(Buffer.isBuffer(temps[0])).toBe(true);
      expect(temps[0]!.subarray(0, sub.length + 4)).toEqual(
        Buffer.concat([sub, Buffer.from('/.b'), Buffer.from([0xe8])]),
      );
      expect(listing(sub)).toEqual(['b\xe8']);
      expect(lstatSync(copy).isFile()).toBe(true);
      expect(ino(copy)).toBe(before);
      expect(readFileSync(copy).equals(data)).toBe(true);
      expect(ino(kept)).not.toBe(before);
      expect(listing(dir)).toEqual(['a\xe9', 'sub\xff']);
    });
  }
});
