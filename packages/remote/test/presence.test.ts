import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { openStore, type Store } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getAll } from '../src/internal/local-trees.js';
import { Presence } from '../src/internal/presence.js';
import { tempDir } from './helpers/fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempDir('fsw-remote-presence-');
});
afterEach(async () => {
  await tmp.cleanup();
});

const absent = (n: number) => Array.from({ length: n }, () => `blake3:${randomBytes(32).toString('hex')}`);

describe('Presence', () => {
  it('answers like hasMany before and after it switches to listing the store', async () => {
    const store = openStore(join(tmp.dir, 'store'));
    const files = await Promise.all(
      Array.from({ length: 40 }, (_, i) => store.put(Buffer.from(`file ${i}`))),
    );
    const tree = await store.put(Buffer.from([0xee, 0x3e, 1, 0]), 'tree');
    let listed = 0;
    const counting: Store = {
      ...store,
      hasMany: (d) => {
        listed += d.length;
        return store.hasMany(d);
      },
    };
    const presence = new Presence(counting);
    // Small questions go to the store.
    expect(await presence.hasMany([files[0]!, absent(1)[0]!, tree])).toEqual([true, false, true]);
    expect(listed).toBe(3);
    // Past the threshold, one listing answers everything, including objects stored before it.
    const many = [...absent(5000), ...files, tree];
    const answer = await presence.hasMany(many);
    expect(answer.filter(Boolean).length).toBe(41);
    expect(answer.slice(5000).every(Boolean)).toBe(true);
    expect(listed).toBe(3);
  });

  it('keeps asking hasMany for a store that is not in the fstree layout', async () => {
    const store = openStore(join(tmp.dir, 'store'));
    let asked = 0;
    const other: Store = {
      ...store,
      path: () => '/somewhere/else',
      hasMany: (d) => {
        asked += d.length;
        return store.hasMany(d);
      },
    };
    const presence = new Presence(other);
    await presence.hasMany(absent(5000));
    await presence.hasMany(absent(10));
    expect(asked).toBe(5010);
  });
});

describe('getAll (trees a pull reads from the local store)', () => {
  it('reads with blocking calls from a plain local store, through get otherwise, and fails on a missing object', async () => {
    const store = openStore(join(tmp.dir, 'store'));
    const bodies = Array.from({ length: 20 }, (_, i) => Buffer.from(`object ${i}`));
    const digests = await Promise.all(bodies.map((b) => store.put(b)));
    let gets = 0;
    const counting = (s: Store): Store => ({
      ...s,
      get: (d) => {
        gets++;
        return s.get(d);
      },
    });
    const same = (got: Uint8Array[]) => got.every((b, i) => Buffer.from(b).equals(bodies[i]!));
    expect(same(await getAll(counting(store), digests))).toBe(true);
    expect(gets).toBe(0);
    // A store that re-hashes on read, or one without locateSync, is asked through get.
    expect(same(await getAll(counting(openStore(store.dir, { verify: true })), digests))).toBe(true);
    expect(gets).toBe(20);
    const { locateSync: _, ...plain } = store;
    expect(same(await getAll(counting(plain), digests))).toBe(true);
    expect(gets).toBe(40);
    await expect(getAll(store, [digests[0]!, absent(1)[0]!])).rejects.toMatchObject({
      code: 'E_MISSING_OBJECT',
    });
  });
});
