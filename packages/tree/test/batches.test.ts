import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TreeError } from '@fsw/errors';
import { checkout, hashTree, openStore, writeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { snapshot } from './helpers.js';

// The small-file paths run in batches of blocking calls, on the main thread (`workers: 0`) or in worker threads:
// both must give the same results, report per-file errors as TreeErrors, and leave no temp file behind on abort.

const SCRIPT = resolve(import.meta.dirname, 'fixtures/fstree-vectors.sh');
const BASIC = 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9';
let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-batches-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Every path below `dir` whose name starts with one of `prefixes`. */
async function tempsIn(dir: string, prefixes: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const visit = async (abs: string) => {
    for (const d of await readdir(abs, { withFileTypes: true })) {
      if (prefixes.some((p) => d.name.startsWith(p))) found.push(join(abs, d.name));
      if (d.isDirectory()) await visit(join(abs, d.name));
    }
  };
  await visit(dir);
  return found;
}

/** A folder of `count` small files in folders of 20. */
async function manyFiles(dir: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `d${Math.floor(i / 20)}`);
    if (i % 20 === 0) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 7)));
  }
}

/** Options that abort a write-tree or checkout once its first file is done, and the reason it aborts with. */
function abortAfterFirstFile() {
  const controller = new AbortController();
  const reason = new Error('stop');
  return {
    reason,
    options: {
      signal: controller.signal,
      onProgress: (p: { filesDone: number }) => {
        if (p.filesDone >= 1) controller.abort(reason);
      },
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe.each([0, 2])('small files with workers: %i', (workers) => {
  it('write-tree and hashTree give the fstree vector and store every object', async () => {
    execFileSync('bash', [SCRIPT, join(tmp, 'v')]);
    const store = openStore(join(tmp, 'cache'));
    const dir = join(tmp, 'v', 'basic');
    expect(await hashTree(dir, { workers })).toBe(BASIC);
    expect(await writeTree(dir, { store, workers, index: false })).toBe(BASIC);
    expect(await store.has('blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355')).toBe(
      true,
    );
    expect(await store.has('blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')).toBe(
      true,
    );
  });

  it('write-tree reports a store it cannot write to as a TreeError naming the path, leaving no temp file', async () => {
    await manyFiles(join(tmp, 'src'), 40);
    await mkdir(join(tmp, 'cache'));
    // `objects` is a file: creating the fan-out folders below it fails in the batch.
    await writeFile(join(tmp, 'cache', 'objects'), 'not a folder');
    const error = await rejection(
      writeTree(join(tmp, 'src'), { store: openStore(join(tmp, 'cache')), workers, index: false }),
    );
    expect(TreeError.is(error), String(error)).toBe(true);
    expect((error as TreeError).code).toBe('E_NOT_DIR');
    expect((error as TreeError).path).toContain(join(tmp, 'cache', 'objects'));
    expect(await tempsIn(tmp, ['.tmp-', '.fsw-tmp-'])).toEqual([]);
  });

  it('write-tree aborted mid-way throws the reason and leaves no temp file in the store', async () => {
    await manyFiles(join(tmp, 'src'), 300);
    const store = openStore(join(tmp, 'cache'));
    const stop = abortAfterFirstFile();
    const error = await rejection(writeTree(join(tmp, 'src'), { store, workers, ...stop.options }));
    expect(error).toBe(stop.reason);
    expect(await tempsIn(join(tmp, 'cache'), ['.tmp-'])).toEqual([]);
  });

  it('checkout writes files equal to the source, with their modes', async () => {
    await manyFiles(join(tmp, 'src'), 60);
    await writeFile(join(tmp, 'src', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(tmp, 'src', 'private'), 'secret', { mode: 0o600 });
    const store = openStore(join(tmp, 'cache'));
    const digest = await writeTree(join(tmp, 'src'), { store, index: false });
    const out = join(tmp, 'out');
    const result = await checkout(digest, out, { store, workers });
    expect(result.filesWritten).toBe(62);
    expect(await snapshot(out)).toEqual(await snapshot(join(tmp, 'src')));
    expect(await hashTree(out)).toBe(digest);
    // The index written by the checkout makes the next write-tree read nothing.
    let hashed = -1;
    await writeTree(out, { store, onProgress: (p) => (hashed = p.filesHashed) });
    expect(hashed).toBe(0);
  });

  it('checkout reports an object it cannot read as a TreeError and leaves no temp file', async () => {
    await manyFiles(join(tmp, 'src'), 40);
    const store = openStore(join(tmp, 'cache'));
    const digest = await writeTree(join(tmp, 'src'), { store, index: false });
    // An object replaced by a folder passes the presence check but cannot be read.
    const { digest: victim } = await store.putFileWithStat(join(tmp, 'src', 'd1', 'f20.txt'));
    await unlink(store.path(victim));
    await mkdir(store.path(victim));
    const out = join(tmp, 'out');
    const error = await rejection(checkout(digest, out, { store, workers }));
    expect(TreeError.is(error), String(error)).toBe(true);
    expect((error as TreeError).code).toBe('E_IS_DIR');
    expect((error as TreeError).path).toBe(join(out, 'd1', 'f20.txt'));
    expect(await tempsIn(out, ['.fsw-tmp-'])).toEqual([]);
  });

  it('checkout aborted mid-way throws the reason, leaves no temp file and can be run again', async () => {
    // More files than the batches in flight at once (2 workers: 4 batches of 128).
    const count = workers === 0 ? 300 : 700;
    await manyFiles(join(tmp, 'src'), count);
    const store = openStore(join(tmp, 'cache'));
    const digest = await writeTree(join(tmp, 'src'), { store, index: false });
    const out = join(tmp, 'out');
    const stop = abortAfterFirstFile();
    const error = await rejection(checkout(digest, out, { store, workers, ...stop.options }));
    expect(error).toBe(stop.reason);
    expect(await tempsIn(out, ['.fsw-tmp-'])).toEqual([]);
    const written = (await tempsIn(out, ['f'])).length;
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThan(count);
    await checkout(digest, out, { store, workers });
    expect(await hashTree(out)).toBe(digest);
  });
});

describe('an unchanged write-tree', () => {
  it('re-reads exactly the files whose objects left the store (checked by stat, then by folder listing)', async () => {
    const { hashBytes } = await import('@fsw/hash');
    // 48 contents whose objects share one fan-out folder: past the 32 lookups after which the folder is listed.
    const contents: string[] = [];
    for (let i = 0; contents.length < 48; i++) {
      if ((await hashBytes(`content ${i}\n`)).startsWith('00')) contents.push(`content ${i}\n`);
    }
    const src = join(tmp, 'src');
    await mkdir(src);
    for (const [i, text] of contents.entries()) await writeFile(join(src, `f${i}`), text);
    const store = openStore(join(tmp, 'cache'));
    const digest = await writeTree(src, { store });
    const gone = [3, 17, 30, 40, 47];
    for (const i of gone) await unlink(store.path(`blake3:${await hashBytes(contents[i]!)}`));
    let hashed = -1;
    expect(await writeTree(src, { store, onProgress: (p) => (hashed = p.filesHashed) })).toBe(digest);
    expect(hashed).toBe(gone.length);
    for (const i of gone) expect(await store.has(`blake3:${await hashBytes(contents[i]!)}`)).toBe(true);
  });
});
