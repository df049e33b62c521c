import { readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCachePath, scanFiles, statFiles } from '@fsw/dedup';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytes, flip, put, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});
afterEach(() => cleanup());

function tree() {
  const big = bytes(100_000);
  const small = bytes(3000);
  return [
    put(dir, 'data/a', big),
    put(dir, 'data/b', big),
    put(dir, 'data/c', flip(big, 50_000)),
    put(dir, 'data/s1', small),
    put(dir, 'data/s2', small),
  ];
}

describe('hash cache', () => {
  it('a second run over an unchanged tree reads nothing and finds the same groups', async () => {
    const list = tree();
    const cache = join(dir, 'cache', 'dedup.txt');
    const first = await scanFiles(await statFiles(list), { cache });
    expect(first.bytesRead).toBeGreaterThan(200_000);
    const second = await scanFiles(await statFiles(list), { cache });
    expect(second.bytesRead).toBe(0);
    expect(second.groups).toEqual(first.groups);
    expect(second.cacheRebuilt).toBe(false);
    // Written atomically: no temporary file is left next to it.
    expect(readdirSync(join(dir, 'cache'))).toEqual(['dedup.txt']);
  });

  it('a change of mtime or size invalidates the entry of that file only', async () => {
    const list = tree();
    const cache = join(dir, 'dedup.txt');
    await scanFiles(await statFiles(list), { cache });
    // Same size, same head and tail, new middle, new mtime: b is no longer a copy of a.
    const b = readFileSync(list[1]!);
    writeFileSync(list[1]!, flip(b, 60_000));
    utimesSync(list[1]!, new Date(), new Date(Date.now() + 5000));
    const scan = await scanFiles(await statFiles(list), { cache });
    expect(scan.groups.map((g) => g.paths)).toEqual([[list[3], list[4]]]);
    // Only b was read again: its head+tail (8 KiB) and, as its size still matches a and c, its whole content.
    expect(scan.bytesRead).toBe(8192 + 100_000);
  });

  it('does not trust a stale entry whose mtime no longer matches, even if the size does', async () => {
    const list = tree();
    const cache = join(dir, 'dedup.txt');
    await scanFiles(await statFiles(list), { cache });
    // c becomes an exact copy of a, with the same size: only an mtime-keyed cache notices.
    writeFileSync(list[2]!, readFileSync(list[0]!));
    utimesSync(list[2]!, new Date(), new Date(Date.now() + 10_000));
    const scan = await scanFiles(await statFiles(list), { cache });
    expect(scan.groups[0]!.paths).toEqual(list.slice(0, 3));
  });

  it('rebuilds a corrupt or truncated cache file instead of trusting it', async () => {
    const list = tree();
    const cache = join(dir, 'dedup.txt');
    const first = await scanFiles(await statFiles(list), { cache });
    const text = readFileSync(cache, 'utf8');
    // A flipped digest (the trailer checksum no longer matches).
    const tampered = text.replace(
      /full:blake3=([0-9a-f])/,
      (_, c: string) => `full:blake3=${c === '0' ? '1' : '0'}`,
    );
    expect(tampered).not.toBe(text);
    for (const broken of [tampered, text.slice(0, text.length >> 1), 'garbage', '']) {
      writeFileSync(cache, broken);
      const scan = await scanFiles(await statFiles(list), { cache });
      expect(scan.groups).toEqual(first.groups);
      expect(scan.bytesRead).toBeGreaterThan(200_000);
      expect(scan.cacheRebuilt).toBe(true);
      // The rebuilt file is whole again.
      expect(readFileSync(cache, 'utf8')).toMatch(/\nend \d+ [0-9a-f]{64}\n$/);
    }
  });

  it('the default location follows XDG_CACHE_HOME', () => {
    expect(defaultCachePath({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/fsw/dedup-cache.txt');
    expect(defaultCachePath({})).toMatch(/\.cache\/fsw\/dedup-cache\.txt$/);
  });
});
