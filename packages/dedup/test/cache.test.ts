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
    const cache = join(dir, 'cache', 'dedup.bin');
    const first = await scanFiles(await statFiles(list), { cache });
    expect(first.bytesRead).toBeGreaterThan(200_000);
    const second = await scanFiles(await statFiles(list), { cache });
    expect(second.bytesRead).toBe(0);
    expect(second.groups).toEqual(first.groups);
    expect(second.cacheRebuilt).toBe(false);
    // Written atomically: no temporary file is left next to it.
    expect(readdirSync(join(dir, 'cache'))).toEqual(['dedup.bin']);
  });

  it('keeps the digests of a near-duplicate pair, so a second run does not compare it again', async () => {
    const data = bytes(300_000);
    const list = [
      put(dir, 'p/a', data),
      put(dir, 'p/b', flip(data, 150_000)),
      put(dir, 'q/a', data.subarray(1)),
    ];
    const cache = join(dir, 'dedup.bin');
    const first = await scanFiles(await statFiles(list), { cache });
    expect(first.groups).toEqual([]);
    const second = await scanFiles(await statFiles(list), { cache });
    expect(second.bytesRead).toBe(0);
    expect(second.groups).toEqual([]);
  });

  it('a change of mtime or size invalidates the entry of that file only', async () => {
    const list = tree();
    const cache = join(dir, 'dedup.bin');
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
    const cache = join(dir, 'dedup.bin');
    await scanFiles(await statFiles(list), { cache });
    // c becomes an exact copy of a, with the same size: only an mtime-keyed cache notices.
    writeFileSync(list[2]!, readFileSync(list[0]!));
    utimesSync(list[2]!, new Date(), new Date(Date.now() + 10_000));
    const scan = await scanFiles(await statFiles(list), { cache });
    expect(scan.groups[0]!.paths).toEqual(list.slice(0, 3));
  });

  it('rebuilds a corrupt or truncated cache file instead of trusting it', async () => {
    const list = tree();
    const cache = join(dir, 'dedup.bin');
    const first = await scanFiles(await statFiles(list), { cache });
    const data = readFileSync(cache);
    // A flipped byte in the middle (the trailing checksum no longer matches).
    const tampered = Buffer.from(data);
    tampered[data.length >> 1] = tampered[data.length >> 1]! ^ 1;
    for (const broken of [
      tampered,
      data.subarray(0, data.length >> 1),
      Buffer.from('garbage'),
      Buffer.alloc(0),
    ]) {
      writeFileSync(cache, broken);
      const scan = await scanFiles(await statFiles(list), { cache });
      expect(scan.groups).toEqual(first.groups);
      expect(scan.bytesRead).toBeGreaterThan(200_000);
      expect(scan.cacheRebuilt).toBe(true);
      // The rebuilt file is whole again: a second run trusts it.
      const again = await scanFiles(await statFiles(list), { cache });
      expect([again.bytesRead, again.cacheRebuilt]).toEqual([0, false]);
    }
  });

  it('replaces a cache of the older text format without reading it, and keeps entries of files not seen', async () => {
    const list = tree();
    const cache = join(dir, 'dedup.bin');
    writeFileSync(cache, 'fsw-dedup-cache 1\n1 2 3 4 full:blake3=00\nend 1 x\n');
    const first = await scanFiles(await statFiles(list), { cache });
    expect(first.cacheRebuilt).toBe(false);
    expect(readFileSync(cache).subarray(0, 18).toString()).toBe('fsw-dedup-cache 2\n');
    // A run over part of the tree adds a digest kind for those files only; the others' entries stay.
    const part = await scanFiles(await statFiles(list.slice(0, 2)), { cache, algorithm: 'sha256' });
    expect(part.bytesRead).toBe(200_000);
    const again = await scanFiles(await statFiles(list), { cache });
    expect(again.bytesRead).toBe(0);
    expect(again.groups).toEqual(first.groups);
    const sha = await scanFiles(await statFiles(list.slice(0, 2)), { cache, algorithm: 'sha256' });
    expect(sha.bytesRead).toBe(0);
  });

  it('the default location follows XDG_CACHE_HOME', () => {
    expect(defaultCachePath({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/fsw/dedup-cache.bin');
    expect(defaultCachePath({})).toMatch(/\.cache\/fsw\/dedup-cache\.bin$/);
  });
});
