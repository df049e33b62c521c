import { linkSync, rmSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import {
  byteCompareStage,
  type DedupProgress,
  type DedupStage,
  defaultStages,
  fullHashStage,
  groupDuplicates,
  partialHashStage,
  scanFiles,
  sizeStage,
  splitBy,
  statFiles,
} from '@fsw/dedup';
import { DedupError, FswError } from '@fsw/errors';
import { hashFile } from '@fsw/hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytes, flip, put, skipping, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});
afterEach(() => cleanup());

const paths = (groups: readonly { paths: readonly string[] }[]) => groups.map((g) => [...g.paths]);

describe('default stages', () => {
  it('groups exact copies and tells apart every near-duplicate trap', async () => {
    const big = bytes(64 * 1024);
    const small = bytes(100);
    const a = put(dir, 'big/a.bin', big);
    const b = put(dir, 'big/b.bin', big);
    put(dir, 'traps/same-size.bin', bytes(big.length)); // same size, different bytes
    put(dir, 'traps/tail.bin', flip(big, big.length - 1)); // same first 4 KiB, different tail
    put(dir, 'traps/middle.bin', flip(big, big.length >> 1)); // same head and tail, different middle
    put(dir, 'traps/head.bin', flip(big, 0)); // different first byte
    const s1 = put(dir, 'small/1', small);
    const s2 = put(dir, 'small/2', small);
    const s3 = put(dir, 'small/3', small);
    put(dir, 'small/4', flip(small, 50));
    const files = await statFiles([
      a,
      b,
      s1,
      s2,
      s3,
      ...['same-size.bin', 'tail.bin', 'middle.bin', 'head.bin'].map((n) => join(dir, 'traps', n)),
      join(dir, 'small/4'),
    ]);
    const groups = await groupDuplicates(files);
    expect(paths(groups)).toEqual([
      [a, b],
      [s1, s2, s3],
    ]);
    expect(groups[0]).toMatchObject({ size: big.length, wastedBytes: big.length });
    expect(groups[1]).toMatchObject({ size: 100, wastedBytes: 200 });
    // The digest is the full-content blake3 of the files.
    expect(groups[0]!.digest).toBe((await hashFile(a, { algorithm: 'blake3' })).digest);
  });

  it('reads a hard-linked file once, lists its links together and never counts them as waste', async () => {
    const data = bytes(10_000);
    const a = put(dir, 'a', data);
    const aLink = join(dir, 'a-link');
    linkSync(a, aLink);
    const b = put(dir, 'b', data);
    const lonely = put(dir, 'lonely', bytes(10_000));
    const lonelyLink = join(dir, 'lonely-link');
    linkSync(lonely, lonelyLink);
    const scan = await scanFiles(await statFiles([a, aLink, b, lonely, lonelyLink]));
    expect(scan.files).toBe(3);
    expect(paths(scan.groups)).toEqual([[a, aLink, b]]);
    expect(scan.groups[0]!.wastedBytes).toBe(10_000);
    expect(scan.groups[0]!.files.map((f) => f.paths)).toEqual([[a, aLink], [b]]);
    // partial (3 files x 8 KiB) + full of a and b (10 KB each): a-link is never read.
    expect(scan.bytesRead).toBe(3 * 8192 + 2 * 10_000);
  });

  it('counts the same path given twice, or spelled differently, once', async () => {
    const data = bytes(500);
    const a = put(dir, 'a', data);
    const b = put(dir, 'b', data);
    const files = await statFiles([a, `${dir}/./a`, a, b]);
    expect(files).toHaveLength(2);
    expect(paths(await groupDuplicates(files))).toEqual([[a, b]]);
  });

  it('finds files with unicode and newline names', async () => {
    const data = bytes(3000);
    const a = put(dir, 'ünïcødé 🐘.txt', data);
    const b = put(dir, 'new\nline', data);
    expect(paths(await groupDuplicates(await statFiles([a, b])))).toEqual([[a, b].sort()]);
  });

  it('sorts groups by wasted bytes, then paths', async () => {
    const x = bytes(1000);
    const y = bytes(3000);
    const z = bytes(1000);
    const list = [
      put(dir, 'x1', x),
      put(dir, 'x2', x),
      put(dir, 'x3', x),
      put(dir, 'y1', y),
      put(dir, 'y2', y),
      put(dir, 'z1', z),
      put(dir, 'z2', z),
    ];
    const groups = await groupDuplicates(await statFiles(list));
    expect(groups.map((g) => g.wastedBytes)).toEqual([3000, 2000, 1000]);
    expect(paths(groups)).toEqual([list.slice(3, 5), list.slice(0, 3), list.slice(5)]);
  });

  it('reuses the partial digest of a file no longer than head+tail when both stages use one algorithm', async () => {
    const data = bytes(8192);
    const list = [put(dir, 'a', data), put(dir, 'b', data)];
    const scan = await scanFiles(await statFiles(list), {
      stages: defaultStages({ partialAlgorithm: 'blake3' }),
    });
    expect(scan.groups).toHaveLength(1);
    expect(scan.bytesRead).toBe(2 * 8192);
    const viaOption = await scanFiles(await statFiles(list), { partialAlgorithm: 'blake3' });
    expect(viaOption.bytesRead).toBe(2 * 8192);
  });

  it('filters with CRC-32 by default: small files are read again only when their checksums match', async () => {
    const data = bytes(8192);
    const list = [put(dir, 'a', data), put(dir, 'b', data), put(dir, 'c', flip(data, 5000))];
    const scan = await scanFiles(await statFiles(list));
    expect(paths(scan.groups)).toEqual([list.slice(0, 2)]);
    // a, b and c once by the partial stage, then only a and b by the full stage.
    expect(scan.bytesRead).toBe(3 * 8192 + 2 * 8192);
    expect(scan.groups[0]!.digest).toBe((await hashFile(list[0]!, { algorithm: 'blake3' })).digest);
  });
});

describe('custom pipelines', () => {
  it('runs a custom stage (group by extension) and drops groups of one after every stage', async () => {
    const data = bytes(2000);
    const jpg1 = put(dir, 'one.jpg', data);
    const jpg2 = put(dir, 'two.jpg', data);
    put(dir, 'three.png', data); // same bytes, but alone among .png files
    const seen: string[][] = [];
    const byExtension: DedupStage = {
      name: 'extension',
      refine: (group) => splitBy(group, (file) => extname(file.path).toLowerCase()),
    };
    const spy: DedupStage = {
      name: 'spy',
      refine(group) {
        seen.push(group.files.map((f) => f.path));
        return [group];
      },
    };
    const files = await statFiles([jpg1, jpg2, join(dir, 'three.png')]);
    const groups = await groupDuplicates(files, {
      stages: [byExtension, spy, ...defaultStages()],
    });
    expect(paths(groups)).toEqual([[jpg1, jpg2]]);
    expect(seen).toEqual([[jpg1, jpg2]]);
  });

  it('reports progress per stage, ending each with done === total', async () => {
    const data = bytes(50_000);
    const list = [put(dir, 'a', data), put(dir, 'b', data), put(dir, 'c', bytes(50_000))];
    const reports: DedupProgress[] = [];
    await groupDuplicates(await statFiles(list), { onProgress: (p) => reports.push(p) });
    const last = new Map<string, DedupProgress>();
    for (const r of reports) last.set(r.stage, r);
    expect([...last.keys()]).toEqual(['size', 'partial', 'full']);
    expect(last.get('size')).toEqual({ stage: 'size', done: 3, total: 3, bytes: 0 });
    expect(last.get('partial')).toEqual({ stage: 'partial', done: 3, total: 3, bytes: 3 * 8192 });
    expect(last.get('full')).toEqual({ stage: 'full', done: 2, total: 2, bytes: 100_000 });
  });

  it('hashes thousands of small files on two threads with the same result, and skips a vanished one', async () => {
    const list: string[] = [];
    const pairs: string[][] = [];
    for (let i = 0; i < 5000; i++) {
      const data = bytes(17 + (i % 60));
      list.push(put(dir, `d${i % 50}/f${i}`, data));
      if (i % 250 === 0) {
        const copy = put(dir, `d${i % 50}/f${i}-copy`, data);
        list.push(copy);
        pairs.push([list[list.length - 2]!, copy].sort());
      }
    }
    const files = await statFiles(list);
    rmSync(list[4000]!);
    const { errors, onError } = skipping();
    const scan = await scanFiles(files, {
      onError,
    });
    expect(paths(scan.groups).sort()).toEqual(pairs.sort());
    expect(errors).toEqual([expect.objectContaining({ code: 'E_NOT_FOUND', path: list[4000] })]);
    expect(scan.skipped).toBe(1);
  });

  it('reads thousands of pairs side by side on two threads with the same result, naming a file that failed', async () => {
    // 2,100 pairs of distinct sizes above head + tail: every pair reaches the full stage; every third pair differs
    // in the one byte neither the head nor the tail covers.
    const list: string[] = [];
    const expected: string[][] = [];
    for (let i = 0; i < 2100; i++) {
      const data = bytes(8193 + i);
      const a = put(dir, `d${i % 40}/p${i}a`, data);
      const b = put(dir, `d${i % 40}/p${i}b`, i % 3 === 0 ? flip(data, 4096) : data);
      list.push(a, b);
      if (i % 3 !== 0 && i !== 1000 && i !== 1001) expected.push([a, b]);
    }
    const files = await statFiles(list);
    rmSync(list[2001]!);
    put(dir, 'd1/p1001a', bytes(8193 + 1002));
    const { errors, onError } = skipping();
    // No partial stage: the full stage is the first to read, and meets the file that vanished and the one that grew.
    const scan = await scanFiles(files, {
      stages: [sizeStage(), fullHashStage()],
      onError,
    });
    expect(paths(scan.groups).sort()).toEqual(expected.sort());
    expect(errors.map((e) => [e.code, e.path]).sort()).toEqual([
      ['E_CHANGED', list[2002]],
      ['E_NOT_FOUND', list[2001]],
    ]);
  });

  it('paranoid: true ends the default stages with the byte comparison', async () => {
    const data = bytes(10_000);
    const list = [put(dir, 'a', data), put(dir, 'b', data)];
    const stages = new Set<string>();
    const groups = await groupDuplicates(await statFiles(list), {
      paranoid: true,
      onProgress: (p) => stages.add(p.stage),
    });
    expect(paths(groups)).toEqual([list]);
    expect([...stages]).toEqual(['size', 'partial', 'full', 'bytes']);
  });

  it('refines at most `concurrency` groups at once', async () => {
    const list: string[] = [];
    for (let i = 0; i < 12; i++) {
      const data = bytes(100 + i);
      list.push(put(dir, `${i}a`, data), put(dir, `${i}b`, data));
    }
    let active = 0;
    let peak = 0;
    const slow: DedupStage = {
      name: 'slow',
      async refine(group) {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        return [group];
      },
    };
    const groups = await groupDuplicates(await statFiles(list), {
      stages: [sizeStage(), slow],
      concurrency: 3,
    });
    expect(groups).toHaveLength(12);
    expect(peak).toBe(3);
  });

  it('byteCompareStage splits files a weaker stage found equal', async () => {
    const x = bytes(300_000);
    const a = put(dir, 'a', x);
    const b = put(dir, 'b', x);
    const c = put(dir, 'c', flip(x, 299_999));
    const d = put(dir, 'd', flip(x, 299_999));
    put(dir, 'e', flip(x, 5));
    const files = await statFiles([a, b, c, d, join(dir, 'e')]);
    // Only size, then bytes: the paranoid check alone must get it right.
    const groups = await groupDuplicates(files, { stages: [sizeStage(), byteCompareStage()] });
    expect(paths(groups).sort()).toEqual([
      [a, b],
      [c, d],
    ]);
    expect(groups.every((g) => g.digest.startsWith('size:300000'))).toBe(true);
  });

  it('a partial stage refined without prepare (wrapped by another stage) hashes the group itself', async () => {
    const data = bytes(100);
    const a = put(dir, 'a', data);
    const b = put(dir, 'b', data);
    put(dir, 'c', flip(data, 0));
    const files = await statFiles([a, b, join(dir, 'c')]);
    for (const algorithm of ['crc32', 'blake3'] as const) {
      const inner = partialHashStage({ algorithm, bytes: 16 });
      const wrapped: DedupStage = { name: 'wrapped', refine: (group, ctx) => inner.refine(group, ctx) };
      const viaRefine = await groupDuplicates(files, { stages: [sizeStage(), wrapped] });
      const viaPrepare = await groupDuplicates(files, { stages: [sizeStage(), inner] });
      expect(paths(viaRefine)).toEqual([[a, b]]);
      expect(viaRefine[0]?.digest).toBe(viaPrepare[0]?.digest);
      expect(viaRefine[0]?.digest).toMatch(algorithm === 'crc32' ? /^[0-9a-f]{8}$/ : /^[0-9a-f]{64}$/);
    }
  });

  it('partial stages at the head or the tail only catch what they read', async () => {
    const x = bytes(20_000);
    const a = put(dir, 'a', x);
    const tailDiffers = put(dir, 't', flip(x, 19_999));
    const files = await statFiles([a, tailDiffers]);
    const head = await groupDuplicates(files, { stages: [partialHashStage({ where: 'head', bytes: 1024 })] });
    expect(paths(head)).toEqual([[a, tailDiffers]]);
    const tail = await groupDuplicates(files, { stages: [partialHashStage({ where: 'tail', bytes: 1024 })] });
    expect(tail).toEqual([]);
    const full = await groupDuplicates(files, { stages: [fullHashStage({ algorithm: 'sha256' })] });
    expect(full).toEqual([]);
  });

  it('rejects bad stage options with E_INVALID_ARGUMENT', () => {
    expect(() => partialHashStage({ bytes: 0 })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(() => partialHashStage({ where: 'middle' as 'head' })).toThrow(DedupError);
  });
});

describe('errors', () => {
  it('throws a typed error naming a file that vanished before it was read, unless onError skips it', async () => {
    const data = bytes(5000);
    const list = [put(dir, 'a', data), put(dir, 'b', data), put(dir, 'c', data)];
    const files = await statFiles(list);
    rmSync(list[2]!);
    const error = await groupDuplicates(files).catch((e: unknown) => e);
    expect(FswError.is(error)).toBe(true);
    expect(error).toMatchObject({ code: 'E_NOT_FOUND', path: list[2] });
    const skipped: unknown[] = [];
    const scan = await scanFiles(files, {
      onError: (e) => {
        skipped.push(e);
        return 'skip';
      },
    });
    expect(paths(scan.groups)).toEqual([list.slice(0, 2)]);
    expect(scan.skipped).toBe(1);
    expect(skipped).toHaveLength(1);
  });

  it('statFiles refuses what is not a regular file', async () => {
    await expect(statFiles([dir])).rejects.toMatchObject({ code: 'E_NOT_FILE', path: dir });
    await expect(statFiles([join(dir, 'missing')])).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('throws the signal reason when aborted', async () => {
    const data = bytes(5000);
    const files = await statFiles([put(dir, 'a', data), put(dir, 'b', data)]);
    const controller = new AbortController();
    controller.abort(new Error('stop now'));
    await expect(groupDuplicates(files, { signal: controller.signal })).rejects.toThrow('stop now');
  });

  it('rejects a bad concurrency', async () => {
    await expect(groupDuplicates([], { concurrency: 0 })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });

  it('hashes large files in several reads with the digest of @fsw/hash, and skips one that grew or shrank', async () => {
    // 2.5 MiB: three reads of the full stage; a fourth file differs in its middle chunk only.
    const data = bytes(2.5 * 1024 * 1024);
    const list = ['a', 'b', 'c', 'd', 'e'].map((name) => put(dir, name, data));
    put(dir, 'd', flip(data, 1_500_000));
    const files = await statFiles(list);
    put(dir, 'b', Buffer.concat([data, data.subarray(0, 1)]));
    put(dir, 'c', data.subarray(0, data.length - 1));
    const { errors, onError } = skipping();
    const groups = await groupDuplicates(files, {
      stages: [sizeStage(), fullHashStage()],
      onError,
    });
    expect(paths(groups)).toEqual([[list[0], list[4]]]);
    expect(groups[0]!.digest).toBe((await hashFile(list[0]!, { algorithm: 'blake3' })).digest);
    expect(errors.map((e) => [e.code, e.path]).sort()).toEqual([
      ['E_CHANGED', list[1]],
      ['E_CHANGED', list[2]],
    ]);
  });

  it('reads a pair side by side: one digest for both, a near-duplicate pair given up where it differs', async () => {
    const MiB = 1024 * 1024;
    const same = bytes(3 * MiB);
    const near = bytes(3 * MiB + 1);
    const list = [
      put(dir, 'same/a', same),
      put(dir, 'same/b', same),
      put(dir, 'near/a', near),
      put(dir, 'near/b', flip(near, 1.5 * MiB)),
    ];
    const scan = await scanFiles(await statFiles(list));
    expect(paths(scan.groups)).toEqual([list.slice(0, 2)]);
    expect(scan.groups[0]!.digest).toBe((await hashFile(list[0]!, { algorithm: 'blake3' })).digest);
    // The equal pair read whole (both files), the other up to the 1 MiB chunk that differs (2 MiB of each), plus
    // the partial stage's head and tail of all four: less than the 12 MiB of hashing every file whole.
    expect(scan.bytesRead).toBeGreaterThanOrEqual(6 * MiB + 4 * MiB);
    expect(scan.bytesRead).toBeLessThan(6 * MiB + 4 * MiB + 64 * 1024);
  });

  it('names the file of a pair that changed or vanished since it was listed', async () => {
    const data = bytes(200_000);
    const sizes: Record<string, number> = { a: 200_000, b: 180_000, c: 150_000 };
    const list = ['a1', 'a2', 'b1', 'b2', 'c1', 'c2'].map((name) =>
      put(dir, name, data.subarray(0, sizes[name[0]!])),
    );
    const files = await statFiles(list);
    put(dir, 'a1', Buffer.concat([data, data.subarray(0, 1)]));
    put(dir, 'b2', data.subarray(0, 179_999));
    rmSync(list[5]!);
    const { errors, onError } = skipping();
    const groups = await groupDuplicates(files, {
      stages: [sizeStage(), fullHashStage()],
      onError,
    });
    expect(groups).toEqual([]);
    expect(errors.map((e) => [e.code, e.path]).sort()).toEqual([
      ['E_CHANGED', list[0]],
      ['E_CHANGED', list[3]],
      ['E_NOT_FOUND', list[5]],
    ]);
  });

  it('skips a file that changed size between listing and hashing', async () => {
    const data = bytes(5000);
    const list = [put(dir, 'a', data), put(dir, 'b', data), put(dir, 'c', data)];
    const files = await statFiles(list);
    put(dir, 'c', Buffer.concat([data, data.subarray(0, 10)]));
    expect(statSync(list[2]!).size).toBe(5010);
    const { errors, onError } = skipping();
    const groups = await groupDuplicates(files, {
      onError,
    });
    expect(paths(groups)).toEqual([list.slice(0, 2)]);
    expect(errors).toEqual([expect.objectContaining({ code: 'E_CHANGED', path: list[2] })]);
  });

  it('skips a file that shrank between listing and hashing, at the head or in the tail window', async () => {
    const small = bytes(5000);
    const large = bytes(30_000);
    const list = [put(dir, 's1', small), put(dir, 's2', small), put(dir, 's3', small)];
    const big = [put(dir, 'l1', large), put(dir, 'l2', large), put(dir, 'l3', large)];
    const files = await statFiles([...list, ...big]);
    put(dir, 's3', small.subarray(0, 4000));
    put(dir, 'l3', Buffer.concat([large, large.subarray(0, 1)]));
    const { errors, onError } = skipping();
    const groups = await groupDuplicates(files, {
      onError,
    });
    expect(paths(groups).sort()).toEqual([big.slice(0, 2), list.slice(0, 2)]);
    expect(errors.map((e) => [e.code, e.path]).sort()).toEqual([
      ['E_CHANGED', big[2]],
      ['E_CHANGED', list[2]],
    ]);
  });
});
