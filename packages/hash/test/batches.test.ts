import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  closeHashPool,
  type HashFileEntry,
  type HashProgress,
  hashBytes,
  hashFileBatches,
  hashFiles,
} from '@fsw/hash';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
let files: string[];
let want: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fsw-hash-batches-'));
  // Small files and two over 1 MiB (worker threads), so that they finish out of input order.
  const sizes = Array.from({ length: 300 }, (_, i) => (i % 97 === 5 ? (1 << 20) + 7 * i : 100 + 31 * i));
  files = sizes.map((size, i) => {
    const p = join(dir, `f${String(i).padStart(3, '0')}`);
    writeFileSync(p, Buffer.alloc(size, i % 251));
    return p;
  });
  want = await Promise.all(sizes.map((size, i) => hashBytes(Buffer.alloc(size, i % 251))));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});
afterAll(() => closeHashPool());

async function collect(stretches: AsyncIterable<HashFileEntry[]>): Promise<HashFileEntry[]> {
  const all: HashFileEntry[] = [];
  for await (const stretch of stretches) {
    expect(stretch.length).toBeGreaterThan(0);
    all.push(...stretch);
  }
  return all;
}

describe('hashFileBatches', () => {
  it('gives one entry per path in input order, errors in place, from async batches', async () => {
    const missing = join(dir, 'missing');
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const input = [files.slice(0, 100), [missing], [], files.slice(100, 250), [sub, ...files.slice(250)]];
    async function* batches() {
      for (const b of input) yield b;
    }
    for (const concurrency of [1, 2]) {
      const got = await collect(hashFileBatches(batches(), { concurrency }));
      expect(got.map((e) => e.path)).toEqual(input.flat());
      const results = got.filter((e) => e.result !== undefined);
      expect(results.map((e) => e.result!.digest)).toEqual(want);
      expect(results.every((e) => e.result!.path === e.path)).toBe(true);
      expect(got[100]!.error).toMatchObject({ name: 'HashError', code: 'E_NOT_FOUND', path: missing });
      expect(got[251]!.error).toMatchObject({ code: 'E_IS_DIR', path: sub });
    }
  });

  it('takes an array of arrays (progress totals known up front) and a sync iterable', async () => {
    const seen: HashProgress[] = [];
    const got = await collect(
      hashFileBatches([files.slice(0, 10), files.slice(10)], {
        algorithm: 'sha256',
        onProgress: (p) => seen.push(p),
      }),
    );
    const sha = await hashFiles(files, { algorithm: 'sha256' });
    expect(got.map((e) => e.result?.digest)).toEqual(sha.map((r) => r.digest));
    const total = sha.reduce((n, r) => n + r.size, 0);
    expect(seen[0]).toMatchObject({ bytesTotal: total, filesTotal: files.length, filesDone: 0 });
    expect(seen.at(-1)).toEqual({
      bytesDone: total,
      bytesTotal: total,
      filesDone: files.length,
      filesTotal: files.length,
      filesFailed: 0,
    });
    const fromSet = await collect(hashFileBatches(new Set([files.slice(0, 3)])));
    expect(fromSet.map((e) => e.result?.digest)).toEqual(want.slice(0, 3));
  });

  it('rejects batches that are not arrays of strings, and stops with signal.reason', async () => {
    await expect(collect(hashFileBatches(['a'] as unknown as string[][]))).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    async function* bad() {
      yield [42] as unknown as string[];
    }
    await expect(collect(hashFileBatches(bad()))).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(collect(hashFileBatches(42 as unknown as string[][]))).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    const ac = new AbortController();
    const reason = new Error('enough');
    let pulled = 0;
    let released = false;
    async function* endless() {
      try {
        for (;;) {
          pulled++;
          yield files.slice(0, 50);
        }
      } finally {
        released = true;
      }
    }
    let n = 0;
    const run = (async () => {
      for await (const stretch of hashFileBatches(endless(), { signal: ac.signal })) {
        n += stretch.length;
        if (n >= 200) ac.abort(reason);
      }
    })();
    await expect(run).rejects.toBe(reason);
    // The endless input was let go when the batch ended, and read only a window ahead of the output (how far
    // ahead depends on which files finish first, so the bound is loose: 200 batches are 10,000 files).
    expect(released).toBe(true);
    expect(pulled).toBeLessThan(200);
  });
});
