import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { TreeError } from '@fsw/errors';
import { hashBytes } from '@fsw/hash';
import { defaultStoreDir, encodeTree, openStore } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-store-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const HELLO = 'blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355';
const EMPTY = 'blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  }
  return out.sort();
}

describe('openStore', () => {
  it('stores bytes under objects/<hex[0:2]>/<hex[2:]>.file and reads them back', async () => {
    const store = openStore(join(tmp, 'cache'));
    const digest = await store.put(Buffer.from('hello world\n'));
    expect(digest).toBe(HELLO);
    expect(await listAll(store.dir)).toEqual([
      'objects/dc/5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355.file',
    ]);
    expect(Buffer.from(await store.get(digest)).toString()).toBe('hello world\n');
    expect(await text(await store.read(digest))).toBe('hello world\n');
    // Every digest form reaches the same object.
    expect(await store.has(digest.slice('blake3:'.length).toUpperCase())).toBe(true);
    expect(await store.put(new Uint8Array(0))).toBe(EMPTY);
    expect((await store.get(EMPTY)).length).toBe(0);
  });

  it('keeps trees under .tree and finds either suffix', async () => {
    const store = openStore(join(tmp, 'cache'));
    const treeBytes = encodeTree([{ name: 'a', digest: HELLO, type: 'file', mode: 0o644 }]);
    const digest = await store.put(treeBytes, 'tree');
    expect(store.path(digest, 'tree')).toMatch(/\.tree$/);
    expect((await stat(store.path(digest, 'tree'))).isFile()).toBe(true);
    expect(await store.has(digest)).toBe(true);
    expect(await store.locate(digest)).toMatchObject({ kind: 'tree', size: treeBytes.length });
    expect(Buffer.from(await store.get(digest))).toEqual(Buffer.from(treeBytes));
    expect(await store.hasMany([digest, HELLO, EMPTY])).toEqual([true, false, false]);
  });

  it('throws E_MISSING_OBJECT for an absent object and E_INVALID_ARGUMENT for a bad digest', async () => {
    const store = openStore(join(tmp, 'cache'));
    await expect(store.get(HELLO)).rejects.toMatchObject({ name: 'TreeError', code: 'E_MISSING_OBJECT' });
    await expect(store.read(HELLO)).rejects.toMatchObject({ code: 'E_MISSING_OBJECT' });
    await expect(store.has('blake3:nothex')).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });

  it('putVerified stores matching bytes and rejects a mismatch storing nothing', async () => {
    const store = openStore(join(tmp, 'cache'));
    await store.putVerified(HELLO, Buffer.from('hello world\n'));
    expect(await store.has(HELLO)).toBe(true);
    const err = await store.putVerified(EMPTY, Buffer.from('not empty')).catch((e: unknown) => e);
    expect(TreeError.is(err) && err.code).toBe('E_CORRUPT');
    expect(await store.has(EMPTY)).toBe(false);
    expect(await listAll(store.dir)).toHaveLength(1);
    // sha1 digests are verified with sha1.
    const sha1 = `sha1:${await hashBytes('abc', { algorithm: 'sha1' })}`;
    await store.putVerified(sha1, Buffer.from('abc'));
    expect(Buffer.from(await store.get(sha1)).toString()).toBe('abc');
    await expect(store.putVerified(sha1, Buffer.from('abd'))).rejects.toMatchObject({ code: 'E_CORRUPT' });
  });

  it('putManyVerified stores many objects, skips stored ones and refuses mismatches storing nothing', async () => {
    const store = openStore(join(tmp, 'cache'));
    await store.put(Buffer.from('hello world\n'));
    const treeBytes = encodeTree([{ name: 'a', digest: HELLO, type: 'file', mode: 0o644 }]);
    const sha1 = `sha1:${await hashBytes('abc', { algorithm: 'sha1' })}`;
    const many = Array.from({ length: 300 }, (_, i) => Buffer.from(`object ${i}`));
    const objects = [
      { digest: HELLO, bytes: Buffer.from('hello world\n') },
      { digest: `blake3:${await hashBytes(treeBytes)}`, bytes: treeBytes, kind: 'tree' as const },
      { digest: sha1, bytes: Buffer.from('abc') },
      ...(await Promise.all(many.map(async (bytes) => ({ digest: await hashBytes(bytes), bytes })))),
    ];
    expect(await store.putManyVerified(objects)).toEqual({ written: 302, present: 1, skipped: 0 });
    expect(store.path(objects[1]!.digest, 'tree')).toMatch(/\.tree$/);
    expect((await stat(store.path(objects[1]!.digest, 'tree'))).isFile()).toBe(true);
    expect(Buffer.from(await store.get(sha1)).toString()).toBe('abc');
    expect(Buffer.from(await store.get(objects[200]!.digest)).toString()).toBe('object 197');
    expect(await listAll(store.dir)).toHaveLength(303);
    expect(await store.putManyVerified(objects)).toEqual({ written: 0, present: 303, skipped: 0 });

    // Default: the first failure rejects with putVerified's error; what came before it is stored, nothing after.
    const other = Buffer.from('other');
    const bad = [
      { digest: `blake3:${await hashBytes(other)}`, bytes: other },
      { digest: EMPTY, bytes: Buffer.from('not empty') },
      { digest: await hashBytes('after'), bytes: Buffer.from('after') },
    ];
    const err = await store.putManyVerified(bad).catch((e: unknown) => e);
    expect(TreeError.is(err) && err.code).toBe('E_CORRUPT');
    expect(await store.hasMany(bad.map((o) => o.digest))).toEqual([true, false, false]);
    // onError 'skip' goes on and counts; a digest that does not parse is a per-object error too.
    const seen: [string, number][] = [];
    const result = await store.putManyVerified([...bad, { digest: 'blake3:nothex', bytes: other }], {
      onError: (e, _object, index) => {
        seen.push([e.code, index]);
        return 'skip';
      },
    });
    expect(result).toEqual({ written: 1, present: 1, skipped: 2 });
    expect(seen).toEqual([
      ['E_CORRUPT', 1],
      ['E_INVALID_ARGUMENT', 3],
    ]);
    expect(await store.has(EMPTY)).toBe(false);
    expect((await listAll(store.dir)).filter((p) => p.includes('.tmp-'))).toEqual([]);
  });

  it('putManyVerified yields between slices, stops on abort and reports write errors', async () => {
    const store = openStore(join(tmp, 'cache'));
    const objects = await Promise.all(
      Array.from({ length: 2000 }, async (_, i) => {
        const bytes = Buffer.alloc(2048, i % 251);
        bytes.writeUInt32LE(i);
        return { digest: await hashBytes(bytes), bytes };
      }),
    );
    const controller = new AbortController();
    let turns = 0;
    const tick = () => {
      turns++;
      if (turns === 2) controller.abort(new Error('stop'));
      else setImmediate(tick);
    };
    setImmediate(tick);
    await expect(store.putManyVerified(objects, { signal: controller.signal })).rejects.toThrow('stop');
    const stored = (await store.hasMany(objects.map((o) => o.digest))).filter(Boolean).length;
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(objects.length);
    await expect(store.putManyVerified(objects, { signal: controller.signal })).rejects.toThrow('stop');

    // A store whose objects folder is a file cannot be written: the file-system error names the object.
    await writeFile(join(tmp, 'blocked'), '');
    const blocked = openStore(join(tmp, 'blocked'));
    const failed = await blocked.putManyVerified(objects.slice(0, 2)).catch((e: unknown) => e);
    expect(TreeError.is(failed) && failed.code).toBe('E_NOT_DIR');
    expect(TreeError.is(failed) && failed.path).toContain(objects[0]!.digest.slice(2, 8));
  });

  it('putFile stores small and large files (streamed) with their digests', async () => {
    const store = openStore(join(tmp, 'cache'));
    const small = join(tmp, 'small');
    const big = join(tmp, 'big');
    await writeFile(small, 'hello world\n');
    const bigBytes = Buffer.alloc(9 * 1024 * 1024 + 7, 'xyz');
    await writeFile(big, bigBytes);
    expect(await store.putFile(small)).toBe(HELLO);
    const bigDigest = await store.putFile(big);
    expect(bigDigest).toBe(`blake3:${await hashBytes(bigBytes)}`);
    expect(Buffer.from(await store.get(bigDigest)).equals(bigBytes)).toBe(true);
    // Storing again leaves exactly the objects, no temp files.
    await store.putFile(big);
    expect(await listAll(store.dir)).toHaveLength(2);
    await expect(store.putFile(tmp)).rejects.toMatchObject({ code: 'E_IS_DIR' });
    // A FIFO is refused at once instead of blocking on a writer that never comes.
    const fifo = join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(store.putFile(fifo)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(store.putFile(join(tmp, 'missing'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('verify: true detects a corrupted object on get and on read, and removes it', async () => {
    const dir = join(tmp, 'cache');
    const digest = await openStore(dir).put(Buffer.from('hello world\n'));
    const store = openStore(dir, { verify: true });
    await writeFile(store.path(digest), 'hello w0rld\n');
    // Without verification the damage goes unnoticed.
    expect(Buffer.from(await openStore(dir).get(digest)).toString()).toBe('hello w0rld\n');
    await expect(store.get(digest)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(await store.has(digest)).toBe(false);

    await openStore(dir).put(Buffer.from('hello world\n'));
    expect(Buffer.from(await store.get(digest)).toString()).toBe('hello world\n');
    await writeFile(store.path(digest), 'hello w0rld\n');
    await expect(text(await store.read(digest))).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(await store.has(digest)).toBe(false);
  });

  it('hasSync answers from a folder listing once asked often, and sees objects it writes', async () => {
    const store = openStore(join(tmp, 'cache'));
    // Objects that share one fan-out folder (first byte 00), so that its listing kicks in.
    const contents: string[] = [];
    for (let i = 0; contents.length < 41; i++) {
      if ((await hashBytes(`x${i}`)).startsWith('00')) contents.push(`x${i}`);
    }
    const digests: string[] = [];
    for (const c of contents.slice(0, 40)) digests.push(await store.put(Buffer.from(c)));
    expect(digests.every((d) => d.startsWith('blake3:00'))).toBe(true);
    expect(digests.map((d) => store.hasSync(d))).toEqual(digests.map(() => true));
    const absent = `blake3:00${'f'.repeat(62)}`;
    expect(store.hasSync(absent)).toBe(false);
    const late = await store.put(Buffer.from(contents[40]!));
    expect(store.hasSync(late)).toBe(true);
    expect(store.hasSync(`blake3:01${'f'.repeat(62)}`)).toBe(false);
  });

  it('defaults to FSTREE_CACHE, else ~/.cache/fstree', () => {
    expect(defaultStoreDir({ FSTREE_CACHE: '/x/y' })).toBe('/x/y');
    expect(defaultStoreDir({})).toMatch(/\.cache\/fstree$/);
  });
});

describe('concurrent writers', () => {
  it('two processes writing the same objects at once leave a complete, correct store', async () => {
    const dir = join(tmp, 'cache');
    const treeModule = createRequire(import.meta.url).resolve('@fsw/tree');
    const script = join(tmp, 'writer.mjs');
    await writeFile(
      script,
      `import { openStore } from ${JSON.stringify(treeModule)};
const store = openStore(process.argv[2]);
const big = Buffer.alloc(3 * 1024 * 1024, 'fsw');
const jobs = [];
for (let i = 0; i < 200; i++) jobs.push(store.put(Buffer.from('object ' + i)));
for (let i = 0; i < 4; i++) jobs.push(store.put(big));
const digests = await Promise.all(jobs);
process.stdout.write(JSON.stringify(digests));
`,
    );
    const run = () =>
      new Promise<string[]>((resolve, reject) => {
        const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('error', reject);
        child.on('close', (code) =>
          code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`writer exited ${code}`)),
        );
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a).toEqual(b);
    const store = openStore(dir, { verify: true });
    for (const [i, digest] of a!.slice(0, 200).entries()) {
      expect(Buffer.from(await store.get(digest)).toString()).toBe(`object ${i}`);
    }
    expect((await store.get(a![200]!)).length).toBe(3 * 1024 * 1024);
    const files = await listAll(dir);
    expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(files).toHaveLength(201);
  });
});

describe('evict', () => {
  async function aged(store: ReturnType<typeof openStore>, content: string, ageMs: number) {
    const digest = await store.put(Buffer.from(content));
    const t = (Date.now() - ageMs) / 1000;
    await utimes(store.path(digest), t, t);
    return digest;
  }

  it('removes least recently used objects until under maxBytes, never younger than retentionMs', async () => {
    const store = openStore(join(tmp, 'cache'));
    const hour = 3_600_000;
    const oldest = await aged(store, 'a'.repeat(1000), 5 * hour);
    const older = await aged(store, 'b'.repeat(1000), 4 * hour);
    const old = await aged(store, 'c'.repeat(1000), 3 * hour);
    const young = await aged(store, 'd'.repeat(1000), 60_000);
    expect(await store.usage()).toEqual({ bytes: 4000, objects: 4 });

    // Reading an object makes it recently used.
    await store.get(oldest);
    expect(await store.evict({ maxBytes: 2500, retentionMs: hour })).toEqual({
      removed: 2,
      bytesFreed: 2000,
    });
    expect(await store.hasMany([oldest, older, old, young])).toEqual([true, false, false, true]);

    // Nothing younger than the retention goes, even far over the limit.
    expect(await store.evict({ maxBytes: 0, retentionMs: 2 * hour })).toEqual({ removed: 0, bytesFreed: 0 });
    expect(await store.evict({ maxBytes: 0, retentionMs: 0 })).toEqual({ removed: 2, bytesFreed: 2000 });
    expect(await store.usage()).toEqual({ bytes: 0, objects: 0 });
  });

  it('keeps everything under the default 10 GiB, and clears stale temp files', async () => {
    const store = openStore(join(tmp, 'cache'));
    const digest = await aged(store, 'x', 48 * 3_600_000);
    const temp = join(store.dir, 'objects', '.tmp-1-1-deadbeef');
    await writeFile(temp, 'partial');
    const t = (Date.now() - 2 * 3_600_000) / 1000;
    await utimes(temp, t, t);
    expect(await store.evict()).toEqual({ removed: 0, bytesFreed: 7 });
    expect(await store.has(digest)).toBe(true);
    await expect(readFile(temp)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
