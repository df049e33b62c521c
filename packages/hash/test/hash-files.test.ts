import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeHashPool, type HashProgress, hashBytes, hashFile, hashFiles, hashFilesIter } from '@fsw/hash';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
let files: string[];
let sizes: number[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fsw-hash-batch-'));
  // Sizes descending and ascending so that finishing order differs from input order.
  sizes = [3 << 20, 10, 2 << 20, 0, 700_000, 1, 1 << 20, 5, 123_456, 4 << 20];
  files = sizes.map((size, i) => {
    const p = join(dir, `f${i}`);
    const b = Buffer.alloc(size, i + 1);
    writeFileSync(p, b);
    return p;
  });
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});
afterAll(() => closeHashPool());

async function expected(algorithm: 'blake3' | 'xxh128' = 'blake3') {
  return Promise.all(files.map(async (_p, i) => hashBytes(Buffer.alloc(sizes[i]!, i + 1), { algorithm })));
}

describe('hashFiles', () => {
  it('returns results in input order with path, size and engine, at any concurrency', async () => {
    const want = await expected();
    for (const concurrency of [1, 2, 3, 8]) {
      const res = await hashFiles(files, { concurrency });
      expect(res.map((r) => r.path)).toEqual(files);
      expect(res.map((r) => r.digest)).toEqual(want);
      expect(res.map((r) => r.size)).toEqual(sizes);
      expect(res.every((r) => r.engine === 'native' && r.algorithm === 'blake3')).toBe(true);
      expect(res.skipped).toEqual([]);
    }
  });

  it('takes any iterable or async iterable of paths', async () => {
    const want = await expected('xxh128');
    async function* gen() {
      for (const f of files) yield f;
    }
    const res = await hashFiles(gen(), { algorithm: 'xxh128', concurrency: 2 });
    expect(res.map((r) => r.digest)).toEqual(want);
    const fromSet = await hashFiles(new Set(files), { algorithm: 'xxh128', concurrency: 2 });
    expect(fromSet.map((r) => r.digest)).toEqual(want);
  });

  it('reports throttled progress in bytes and files, ending with the totals', async () => {
    const seen: HashProgress[] = [];
    const missing = join(dir, 'missing');
    await hashFiles([...files, missing], {
      concurrency: 2,
      onProgress: (p) => seen.push(p),
      onError: () => 'skip',
    });
    const total = sizes.reduce((a, b) => a + b, 0);
    const last = seen.at(-1)!;
    expect(last).toEqual({
      bytesDone: total,
      bytesTotal: total,
      filesDone: 11,
      filesTotal: 11,
      filesFailed: 1,
    });
    expect(seen[0]!.bytesTotal).toBe(total);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone);
      expect(seen[i]!.filesDone).toBeGreaterThanOrEqual(seen[i - 1]!.filesDone);
    }
    // From an iterable the totals grow as files are opened, and end equal to what was hashed.
    const fromIterable: HashProgress[] = [];
    await hashFiles(new Set(files), { concurrency: 2, onProgress: (p) => fromIterable.push(p) });
    expect(fromIterable.at(-1)).toEqual({
      bytesDone: total,
      bytesTotal: total,
      filesDone: 10,
      filesTotal: 10,
      filesFailed: 0,
    });
    for (const p of fromIterable) expect(p.bytesDone).toBeLessThanOrEqual(p.bytesTotal);
    // Throttled: with a long interval only the first (totals known) and the final report come through.
    const few: HashProgress[] = [];
    await hashFiles(files, { concurrency: 2, progressIntervalMs: 1e9, onProgress: (p) => few.push(p) });
    expect(few.map((p) => p.filesDone)).toEqual([0, 10]);
  });

  it('onError: throw (the default) rejects with the first failure; skip lists it in `skipped`', async () => {
    const missing = join(dir, 'missing');
    const input = [files[0]!, missing, files[1]!];
    await expect(hashFiles(input, { concurrency: 2 })).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
      path: missing,
    });
    const reported: string[] = [];
    const res = await hashFiles(input, {
      concurrency: 2,
      onError: (e) => {
        reported.push(e.path!);
        return 'skip';
      },
    });
    expect(res.map((r) => r.path)).toEqual([files[0], files[1]]);
    expect(reported).toEqual([missing]);
    expect(res.skipped).toHaveLength(1);
    expect(res.skipped[0]).toMatchObject({ name: 'HashError', code: 'E_NOT_FOUND', path: missing });
  });

  it('aborting rejects with signal.reason, and the pool keeps working afterwards', async () => {
    const ac = new AbortController();
    const run = hashFiles(files, { concurrency: 2, signal: ac.signal });
    const reason = new Error('stop here');
    ac.abort(reason);
    await expect(run).rejects.toBe(reason);
    await expect(hashFiles(files, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    await expect(hashFile(files[0]!, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    const res = await hashFiles(files, { concurrency: 2 });
    expect(res.map((r) => r.digest)).toEqual(await expected());
  });

  it('rejects a bad concurrency, and a single path given instead of a list', async () => {
    await expect(hashFiles(files, { concurrency: 0 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(hashFiles(files[0] as unknown as string[])).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });
});

describe('hashFilesIter', () => {
  it('yields every result once, as each finishes; ordered: true keeps input order', async () => {
    const want = await expected();
    const byPath = new Map(files.map((f, i) => [f, want[i]]));
    const got: string[] = [];
    for await (const r of hashFilesIter(files, { concurrency: 2 })) {
      expect(r.digest).toBe(byPath.get(r.path));
      got.push(r.path);
    }
    expect([...got].sort()).toEqual([...files].sort());
    const ordered: string[] = [];
    for await (const r of hashFilesIter(files, { concurrency: 3, ordered: true })) ordered.push(r.path);
    expect(ordered).toEqual(files);
  });

  it('stops pulling paths and cancels work when the consumer breaks out', async () => {
    let pulled = 0;
    function* many() {
      for (let i = 0; i < 5000; i++) {
        pulled++;
        yield files[i % files.length]!;
      }
    }
    let n = 0;
    for await (const _ of hashFilesIter(many(), { concurrency: 2 })) {
      if (++n === 3) break;
    }
    expect(n).toBe(3);
    // Only a window ahead of the workers was read: 64 paths per worker plus refills for results already settled.
    expect(pulled).toBeLessThan(400);
    const res = await hashFiles(files, { concurrency: 2 });
    expect(res).toHaveLength(files.length);
  });
});

describe('many small files', () => {
  it('are hashed in order with the right digests, and an abort midway rejects with signal.reason', async () => {
    const small = Array.from({ length: 600 }, (_, i) => {
      const p = join(dir, `s${i}`);
      writeFileSync(p, Buffer.alloc(1000 + i * 37, i % 251));
      return p;
    });
    const want = await Promise.all(
      small.map((_p, i) => hashBytes(Buffer.alloc(1000 + i * 37, i % 251), { algorithm: 'sha256' })),
    );
    const res = await hashFiles([...small, files[0]!, ...small.slice(0, 5)], { algorithm: 'sha256' });
    expect(res.map((r) => r.digest)).toEqual([
      ...want,
      await hashBytes(Buffer.alloc(sizes[0]!, 1), { algorithm: 'sha256' }),
      ...want.slice(0, 5),
    ]);
    const ac = new AbortController();
    const reason = new Error('stop here');
    let seen = 0;
    const run = (async () => {
      for await (const _ of hashFilesIter(small, { signal: ac.signal })) if (++seen === 50) ac.abort(reason);
    })();
    await expect(run).rejects.toBe(reason);
    expect(seen).toBe(50);
  });
});

describe('the warm pool', () => {
  it('never keeps the process alive once a batch is done, even with workers that got no file', async () => {
    const { spawnSync } = await import('node:child_process');
    const script = `
      import { hashFilesIter } from '@fsw/hash';
      async function* one() { yield process.argv[1]; }
      for await (const r of hashFilesIter(one(), { concurrency: 4 })) process.stdout.write(r.digest);`;
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script, files[1]!], {
      cwd: new URL('.', import.meta.url),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.signal).toBe(null);
    expect(res.status).toBe(0);
    expect(res.stdout).toBe((await expected())[1]);
  });
});

describe('runs of small files', () => {
  it('start a worker as soon as 64 paths are taken, before hashing, and never for fewer', async () => {
    const { spawnSync } = await import('node:child_process');
    // Tiny files take the calling thread microseconds: without the early start, no worker would run. Workers
    // started are counted at the constructor (the pool takes it from node:worker_threads when it starts one).
    const tiny = Array.from({ length: 64 }, (_, i) => {
      const p = join(dir, `t${i}`);
      writeFileSync(p, `${i}`);
      return p;
    });
    const script = `
      import { readFileSync } from 'node:fs';
      import { hashFiles } from '@fsw/hash';
      const wt = process.getBuiltinModule('node:worker_threads');
      let added = 0;
      wt.Worker = class extends wt.Worker { constructor(...a) { super(...a); added++; } };
      const paths = readFileSync(0, 'utf8').split('\\n').slice(0, Number(process.argv[1]));
      async function* walk() { yield* paths; }
      const res = await hashFiles(process.argv[2] === 'walk' ? walk() : paths, { concurrency: 2 });
      process.stdout.write(JSON.stringify({ added, digests: res.map((r) => r.digest) }));`;
    const want = (await hashFiles(tiny, { concurrency: 1 })).map((r) => r.digest);
    for (const [count, input, workers] of [
      [64, 'walk', true],
      [64, 'array', true],
      [63, 'walk', false],
    ] as const) {
      const res = spawnSync(process.execPath, ['--input-type=module', '-e', script, `${count}`, input], {
        cwd: new URL('.', import.meta.url),
        input: tiny.join('\n'),
        encoding: 'utf8',
        env: { ...process.env, FSW_HASH_SMALL_WORKERS: '1' },
        timeout: 30_000,
      });
      expect(res.status, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as { added: number; digests: string[] };
      expect(out.digests).toEqual(want.slice(0, count));
      expect(out.added > 0, `${count} ${input}`).toBe(workers);
    }
  });

  it('go to a worker thread as well when FSW_HASH_SMALL_WORKERS=1, never with 0, with the same digests', async () => {
    const { spawnSync } = await import('node:child_process');
    // Enough work (~125 MB) to keep the calling thread busy past the 15 ms after which workers may start.
    const small = Array.from({ length: 2500 }, (_, i) => {
      const p = join(dir, `r${i}`);
      writeFileSync(p, Buffer.alloc(50_000 + i, i % 251));
      return p;
    });
    const want = (await hashFiles(small, { concurrency: 1 })).map((r) => r.digest);
    // A worker thread shows in the process's thread count (/proc/self/status) once the batch is done.
    const script = `
      import { readFileSync } from 'node:fs';
      import { hashFiles } from '@fsw/hash';
      const threads = () => Number(/Threads:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
      const before = threads();
      const paths = readFileSync(0, 'utf8').split('\\n');
      const res = await hashFiles(paths, { concurrency: 2 });
      process.stdout.write(JSON.stringify({ added: threads() - before, digests: res.map((r) => r.digest) }));`;
    for (const [flag, workers] of [
      ['1', true],
      ['0', false],
    ] as const) {
      const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: new URL('.', import.meta.url),
        input: small.join('\n'),
        encoding: 'utf8',
        env: { ...process.env, FSW_HASH_SMALL_WORKERS: flag },
        timeout: 60_000,
      });
      expect(res.status, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as { added: number; digests: string[] };
      expect(out.digests).toEqual(want);
      if (workers) expect(out.added).toBeGreaterThan(0);
      else expect(out.added).toBe(0);
    }
  });
});
