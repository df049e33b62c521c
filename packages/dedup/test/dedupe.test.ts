import {
  constants,
  copyFileSync,
  linkSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type DuplicateGroup, dedupe, groupDuplicates, statFiles } from '@fsw/dedup';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytes, flip, put, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});
afterEach(() => cleanup());

async function scan(list: string[]): Promise<DuplicateGroup[]> {
  return groupDuplicates(await statFiles(list));
}

/** Three copies with distinct mtimes: a (newest), bb/b (oldest), c. */
function copies(data = bytes(20_000)) {
  const a = put(dir, 'a', data);
  const b = put(dir, 'bb/b', data);
  const c = put(dir, 'c', data);
  utimesSync(a, new Date(), new Date(3_000_000_000_000));
  utimesSync(b, new Date(), new Date(1_000_000_000_000));
  utimesSync(c, new Date(), new Date(2_000_000_000_000));
  return { a, b, c, data };
}

const ino = (p: string) => statSync(p).ino;

describe('dedupe', () => {
  it('hardlink: replaces every extra copy by a hard link to the first, contents intact', async () => {
    const { a, b, c, data } = copies();
    const result = await dedupe(await scan([a, b, c]), { action: 'hardlink' });
    expect(result.done).toEqual([
      { path: b, action: 'hardlink', keptPath: a },
      { path: c, action: 'hardlink', keptPath: a },
    ]);
    expect(result.skipped).toEqual([]);
    expect(result.bytesSaved).toBe(40_000);
    expect(ino(b)).toBe(ino(a));
    expect(ino(c)).toBe(ino(a));
    for (const p of [a, b, c]) expect(readFileSync(p).equals(data)).toBe(true);
    // No temporary names left behind.
    expect(readdirSync(dir).sort()).toEqual(['a', 'bb', 'c']);
    expect(readdirSync(join(dir, 'bb'))).toEqual(['b']);
  });

  it('keep: oldest, newest and shortest-path choose the copy kept', async () => {
    const { a, b, c } = copies();
    const groups = await scan([a, b, c]);
    const kept = async (keep: 'oldest' | 'newest' | 'shortest-path') =>
      (await dedupe(groups, { action: 'delete', keep, dryRun: true })).done[0]!.keptPath;
    expect(await kept('oldest')).toBe(b);
    expect(await kept('newest')).toBe(a);
    expect(await kept('shortest-path')).toBe(a);
    const result = await dedupe(groups, { action: 'delete', keep: 'oldest' });
    expect(result.done.map((d) => d.path)).toEqual([a, c]);
    expect(() => statSync(a)).toThrow();
    expect(() => statSync(c)).toThrow();
    expect(statSync(b).size).toBe(20_000);
  });

  it('dry run checks everything and changes nothing', async () => {
    const { a, b, c } = copies();
    const before = [a, b, c].map(ino);
    const result = await dedupe(await scan([a, b, c]), { action: 'delete', dryRun: true });
    expect(result.dryRun).toBe(true);
    expect(result.done.map((d) => d.path)).toEqual([b, c]);
    expect(result.bytesSaved).toBe(40_000);
    expect([a, b, c].map(ino)).toEqual(before);
  });

  it('symlink: replaces copies by relative symlinks to the kept file', async () => {
    const { a, b, c, data } = copies();
    const result = await dedupe(await scan([a, b, c]), { action: 'symlink' });
    expect(result.done).toHaveLength(2);
    expect(lstatSync(b).isSymbolicLink()).toBe(true);
    expect(readlinkSync(b)).toBe('../a');
    expect(readlinkSync(c)).toBe('a');
    expect(readFileSync(b).equals(data)).toBe(true);
  });

  it('replaces copies whose names are near the 255-byte limit (hard link and symlink), leaving no temp file', async () => {
    const data = bytes(5_000);
    // 249 bytes of 3-byte characters: the temp name's copy of it must end on a character boundary.
    const long = '€'.repeat(83);
    const a = put(dir, 'a', data);
    const b = put(dir, `h/${long}`, data);
    const c = put(dir, `s/${long}`, data);
    const linked = await dedupe(await scan([a, b]), { action: 'hardlink' });
    expect(linked.skipped).toEqual([]);
    expect(lstatSync(b).ino).toBe(lstatSync(a).ino);
    const symlinked = await dedupe(await scan([a, c]), { action: 'symlink' });
    expect(symlinked.skipped).toEqual([]);
    expect(readlinkSync(c)).toBe('../a');
    expect(readdirSync(join(dir, 'h'))).toEqual([long]);
    expect(readdirSync(join(dir, 's'))).toEqual([long]);
  });

  it('skips a file that changed between the scan and dedupe, and leaves it untouched', async () => {
    const { a, b, c, data } = copies();
    const groups = await scan([a, b, c]);
    const changed = flip(data, 10_000);
    writeFileSync(c, changed);
    const result = await dedupe(groups, { action: 'delete' });
    expect(result.done.map((d) => d.path)).toEqual([b]);
    expect(result.skipped).toEqual([
      expect.objectContaining({
        path: c,
        code: 'E_CHANGED',
        reason: expect.stringContaining('changed since the scan'),
      }),
    ]);
    expect(readFileSync(c).equals(changed)).toBe(true);
  });

  it('never removes the last copy, even when run twice or when copies vanished', async () => {
    const { a, b, c, data } = copies();
    const groups = await scan([a, b, c]);
    rmSync(a);
    rmSync(b);
    const first = await dedupe(groups, { action: 'delete' });
    expect(first.done).toEqual([]);
    expect(first.skipped.map((s) => [s.path, s.code])).toEqual([
      [a, 'E_NOT_FOUND'],
      [b, 'E_NOT_FOUND'],
    ]);
    expect(readFileSync(c).equals(data)).toBe(true);
    const again = await dedupe([...groups, ...groups], { action: 'delete' });
    expect(again.done).toEqual([]);
    expect(readFileSync(c).equals(data)).toBe(true);
  });

  it('treats hard links as one copy: the kept file keeps its links, all names of a copy are replaced', async () => {
    const data = bytes(9000);
    const a = put(dir, 'a', data);
    const a2 = join(dir, 'a2');
    linkSync(a, a2);
    const b = put(dir, 'b', data);
    const b2 = join(dir, 'b2');
    linkSync(b, b2);
    const groups = await scan([a, a2, b, b2]);
    expect(groups[0]!.wastedBytes).toBe(9000);
    const result = await dedupe(groups, { action: 'hardlink' });
    expect(result.done.map((d) => d.path)).toEqual([b, b2]);
    expect(result.bytesSaved).toBe(9000);
    expect(new Set([a, a2, b, b2].map(ino)).size).toBe(1);
    expect(statSync(a).nlink).toBe(4);
  });

  it('does not count space as saved while a name outside the group keeps the copy alive', async () => {
    const data = bytes(9000);
    const a = put(dir, 'a', data);
    const b = put(dir, 'b', data);
    linkSync(b, join(dir, 'outside'));
    const result = await dedupe(await scan([a, b]), { action: 'hardlink' });
    expect(result.done.map((d) => d.path)).toEqual([b]);
    expect(result.bytesSaved).toBe(0);
  });

  it('reflink: uses a copy-on-write clone where the filesystem has them, else says so and changes nothing', async () => {
    const { a, b, data } = copies();
    const groups = await scan([a, b]);
    let supported = true;
    try {
      copyFileSync(a, join(dir, 'probe'), constants.COPYFILE_FICLONE_FORCE);
      rmSync(join(dir, 'probe'));
    } catch {
      supported = false;
    }
    const before = ino(b);
    const result = await dedupe(groups, { action: 'reflink' });
    if (supported) {
      expect(result.done.map((d) => d.path)).toEqual([b]);
      expect(ino(b)).not.toBe(before);
    } else {
      expect(result.done).toEqual([]);
      expect(result.skipped).toEqual([
        expect.objectContaining({ path: b, reason: expect.stringContaining('does not support reflinks') }),
      ]);
      expect(ino(b)).toBe(before);
    }
    expect(readFileSync(b).equals(data)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['a', 'bb', 'c']);
  });

  it('rejects an unknown action or keep rule', async () => {
    await expect(dedupe([], { action: 'move' as 'delete' })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    await expect(dedupe([], { keep: 'largest' as 'first' })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });
});
