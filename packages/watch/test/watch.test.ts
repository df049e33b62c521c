import { spawn } from 'node:child_process';
import { appendFile, mkdir, open, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { WatchError } from '@fsw/errors';
import { type FileEvent, FileWatcher, watch } from '@fsw/watch';
import parcel from '@parcel/watcher';
import { afterEach, describe, expect, it } from 'vitest';
import { collect, show, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function fresh(prefix?: string): Promise<string> {
  const t = await tempDir(prefix);
  cleanups.push(t.cleanup);
  return t.dir;
}

async function started(dir: string, options: ConstructorParameters<typeof FileWatcher>[1] = {}) {
  // 200 ms rather than the default 50: on a loaded machine the steps of one fs call (open, write) can be far apart,
  // and these tests assert exact batches.
  const watcher = new FileWatcher(dir, { debounceMs: 200, ...options });
  cleanups.unshift(() => watcher.close());
  const got = collect(watcher, dir);
  await watcher.start();
  return { watcher, got };
}

async function inChunks<T>(
  items: readonly T[],
  size: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

function countBy(events: readonly FileEvent[], type: FileEvent['type']): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) if (e.type === type) counts.set(e.path, (counts.get(e.path) ?? 0) + 1);
  return counts;
}

describe('a burst of 10,000 files', () => {
  it('reports every path exactly once per phase: created, then modified, then deleted', async () => {
    const dir = await fresh();
    const subdirs = ['a', 'b', 'c', 'd'];
    for (const s of subdirs) await mkdir(join(dir, s));
    const { got } = await started(dir);
    const paths = Array.from({ length: 10_000 }, (_, i) => join(dir, subdirs[i % 4]!, `f${i}.txt`));
    const phase = async (type: FileEvent['type'], act: (p: string) => Promise<unknown>) => {
      const from = got.events.length;
      await inChunks(paths, 200, act);
      const mine = () => got.events.slice(from);
      await got
        .until(() => countBy(mine(), type).size === paths.length, 40_000)
        .catch((error: unknown) => {
          const counts = countBy(mine(), type);
          const missing = paths.filter((p) => !counts.has(p)).slice(0, 5);
          const types: Record<string, number> = {};
          for (const e of mine()) types[e.type] = (types[e.type] ?? 0) + 1;
          throw new Error(
            `${type}: ${counts.size} paths, by type ${JSON.stringify(types)}, missing e.g. ${missing}`,
            {
              cause: error,
            },
          );
        });
      const events = (await got.settle(500)).slice(from);
      const counts = countBy(events, type);
      expect(counts.size).toBe(paths.length);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
      // Nothing else about these paths in this phase (no stray created/modified/deleted).
      expect(events.filter((e) => e.type !== type).map((e) => show(dir, e))).toEqual([]);
    };
    // Created empty (one notification each): a file written after its creation was reported is, rightly, also
    // reported modified, which would blur "exactly once" here.
    await phase('created', (p) => open(p, 'wx').then((handle) => handle.close()));
    await phase('modified', (p) => appendFile(p, 'y'));
    await phase('deleted', (p) => unlink(p));
  }, 90_000);
});

describe('coalescing and moves', () => {
  it('reports an atomic save (write a temp file, rename it over) as one modified', async () => {
    const dir = await fresh();
    const file = join(dir, 'doc.txt');
    await writeFile(file, 'v1');
    const { got } = await started(dir);
    await writeFile(join(dir, '.doc.txt.swp'), 'v2');
    await rename(join(dir, '.doc.txt.swp'), file);
    await got.until(() => got.events.length > 0);
    const events = await got.settle();
    expect(events.map((e) => show(dir, e))).toEqual(['modified doc.txt']);
  });

  it('reports a rename within the tree as one renamed with oldPath', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'a.txt'), 'a');
    const { got } = await started(dir);
    await rename(join(dir, 'a.txt'), join(dir, 'sub', 'b.txt'));
    await got.until(() => got.events.length > 0);
    const events = await got.settle();
    expect(events).toEqual([
      expect.objectContaining({
        type: 'renamed',
        path: join(dir, 'sub', 'b.txt'),
        oldPath: join(dir, 'a.txt'),
        isDir: false,
      }),
    ]);
  });

  it('renames a folder, and reports later changes deep inside it under the new name', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'old', 'deep'), { recursive: true });
    await writeFile(join(dir, 'old', 'deep', 'f.txt'), '1');
    const { got } = await started(dir);
    await rename(join(dir, 'old'), join(dir, 'new'));
    await got.until(() => got.events.length > 0);
    expect((await got.settle()).map((e) => show(dir, e))).toEqual(['renamed new/ <- old/']);
    await writeFile(join(dir, 'new', 'deep', 'g.txt'), '2');
    await got.until(() => got.events.length > 1);
    expect((await got.settle()).slice(1).map((e) => show(dir, e))).toEqual(['created new/deep/g.txt']);
  });

  it('coalesces within a batch: created+modified is created, created+deleted is nothing', async () => {
    const dir = await fresh();
    const { got } = await started(dir, { debounceMs: 1000 });
    await writeFile(join(dir, 'kept.txt'), '1');
    await appendFile(join(dir, 'kept.txt'), '2');
    await writeFile(join(dir, 'gone.txt'), '1');
    await unlink(join(dir, 'gone.txt'));
    await got.until(() => got.events.some((e) => e.path.endsWith('kept.txt')));
    const events = await got.settle();
    expect(events.map((e) => show(dir, e))).toEqual(['created kept.txt']);
  });

  it('reports a folder moved in with its contents, and watches its nested folders', async () => {
    const dir = await fresh();
    const outside = await fresh('fsw-watch-out-');
    await mkdir(join(outside, 'pkg', 'lib', 'deep'), { recursive: true });
    await writeFile(join(outside, 'pkg', 'index.js'), '1');
    await writeFile(join(outside, 'pkg', 'lib', 'deep', 'x.js'), '2');
    const { got } = await started(dir);
    await rename(join(outside, 'pkg'), join(dir, 'pkg'));
    const expected = [
      'created pkg/',
      'created pkg/index.js',
      'created pkg/lib/',
      'created pkg/lib/deep/',
      'created pkg/lib/deep/x.js',
    ];
    await got.until(() => got.events.length >= expected.length);
    expect((await got.settle()).map((e) => show(dir, e)).sort()).toEqual(expected);
    // The native backend alone would miss this one (parcel-bundler/watcher#97): the nested folder was never watched.
    await writeFile(join(dir, 'pkg', 'lib', 'deep', 'y.js'), '3');
    await got.until(() => got.events.length > expected.length);
    expect((await got.settle()).slice(expected.length).map((e) => show(dir, e))).toEqual([
      'created pkg/lib/deep/y.js',
    ]);
  });

  it('delivers a batch under a constant stream of changes, bounded by maxWaitMs', async () => {
    const dir = await fresh();
    // The backend hands over a round at least every 500 ms during a stream: with a 1 s debounce alone, nothing would
    // be delivered before the stream stops.
    const { got } = await started(dir, { debounceMs: 1000, maxWaitMs: 1500 });
    let stop = false;
    let finished = false;
    const writer = (async () => {
      for (let i = 0; !stop && i < 600; i++) {
        await writeFile(join(dir, 'stream.log'), String(i));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      finished = true;
    })();
    await got.until(() => got.batches.length > 0, 30_000);
    const arrivedWhileWriting = !finished;
    stop = true;
    await writer;
    expect(arrivedWhileWriting).toBe(true);
  });
});

describe('notifications the backend loses', () => {
  /** The real backend, except that notifications of paths `lose` matches never arrive (as under load, #183). */
  function lossy(lose: (path: string) => boolean) {
    const subscribe: typeof parcel.subscribe = (dir, callback, options) =>
      parcel.subscribe(
        dir,
        (err, events) => {
          const kept = events.filter((e) => !lose(e.path));
          if (err || kept.length > 0) callback(err, kept);
        },
        options,
      );
    return { [Symbol.for('@fsw/watch.backend')]: { subscribe } };
  }

  it('recovers a change lost next to a reported one, from the folder listing once quiet', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'a.txt'), 'a');
    const { got } = await started(
      dir,
      lossy((p) => p.endsWith('/deeper')),
    );
    await rename(join(dir, 'a.txt'), join(dir, 'sub', 'b.txt'));
    await mkdir(join(dir, 'sub', 'deeper'));
    await got.until(() => got.events.length >= 2);
    expect((await got.settle()).map((e) => show(dir, e)).sort()).toEqual([
      'created sub/deeper/',
      'renamed sub/b.txt <- a.txt',
    ]);
  });

  it('recovers changes lost right after start, when no other notification comes', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'gone.txt'), 'x');
    const { got } = await started(
      dir,
      lossy(() => true),
    );
    await writeFile(join(dir, 'sub', 'new.txt'), 'n');
    await unlink(join(dir, 'gone.txt'));
    await got.until(() => got.events.length >= 2);
    expect((await got.settle()).map((e) => show(dir, e)).sort()).toEqual([
      'created sub/new.txt',
      'deleted gone.txt',
    ]);
  });
});

describe('filtering', () => {
  it('skips ignore patterns (gitignore syntax) at any depth', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'node_modules', 'dep'), { recursive: true });
    await mkdir(join(dir, 'src', 'node_modules'), { recursive: true });
    const { got } = await started(dir, { ignore: ['node_modules', '*.log', '/build'] });
    await writeFile(join(dir, 'node_modules', 'dep', 'index.js'), '1');
    await writeFile(join(dir, 'src', 'node_modules', 'x.js'), '1');
    await writeFile(join(dir, 'src', 'debug.log'), '1');
    await mkdir(join(dir, 'build'));
    await writeFile(join(dir, 'src', 'build'), 'a file named build below the root is not /build');
    await writeFile(join(dir, 'src', 'main.ts'), '1');
    await got.until(() => got.events.some((e) => e.path.endsWith('main.ts')));
    const events = await got.settle();
    expect(events.map((e) => show(dir, e)).sort()).toEqual(['created src/build', 'created src/main.ts']);
  });

  it('honours .gitignore files with ignoreFiles, nested ones for their subtree', async () => {
    const dir = await fresh();
    await writeFile(join(dir, '.gitignore'), 'dist/\n*.tmp\n');
    await mkdir(join(dir, 'pkg'));
    await writeFile(join(dir, 'pkg', '.gitignore'), 'generated.ts\n!keep.tmp\n');
    const { got } = await started(dir, { ignoreFiles: ['.gitignore'] });
    await mkdir(join(dir, 'dist'));
    await writeFile(join(dir, 'dist', 'out.js'), '1');
    await writeFile(join(dir, 'a.tmp'), '1');
    await writeFile(join(dir, 'pkg', 'generated.ts'), '1');
    await writeFile(join(dir, 'generated.ts'), 'not ignored at the root');
    await writeFile(join(dir, 'pkg', 'keep.tmp'), 're-included by the nested file');
    await writeFile(join(dir, 'pkg', 'index.ts'), '1');
    await got.until(() => got.events.length >= 3);
    const events = await got.settle();
    expect(events.map((e) => show(dir, e)).sort()).toEqual([
      'created generated.ts',
      'created pkg/index.ts',
      'created pkg/keep.tmp',
    ]);
  });

  it('reports direct children only when recursive is false', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'sub'));
    const { got } = await started(dir, { recursive: false });
    await writeFile(join(dir, 'sub', 'deep.txt'), '1');
    await mkdir(join(dir, 'newdir'));
    await writeFile(join(dir, 'newdir', 'deeper.txt'), '1');
    await writeFile(join(dir, 'top.txt'), '1');
    await got.until(() => got.events.length >= 2);
    const events = await got.settle();
    expect(events.map((e) => show(dir, e)).sort()).toEqual(['created newdir/', 'created top.txt']);
  });

  it('delivers only the requested types', async () => {
    const dir = await fresh();
    await writeFile(join(dir, 'old.txt'), '1');
    const { got } = await started(dir, { types: ['deleted'] });
    await writeFile(join(dir, 'new.txt'), '1');
    await unlink(join(dir, 'old.txt'));
    await got.until(() => got.events.length > 0);
    const events = await got.settle();
    expect(events.map((e) => show(dir, e))).toEqual(['deleted old.txt']);
  });
});

describe('lifecycle', () => {
  it('watch() yields batches and closing by leaving the loop frees the watcher', async () => {
    const dir = await fresh();
    const seen: string[] = [];
    const iterator = watch(dir, { debounceMs: 20 });
    const first = iterator.next();
    // The generator starts watching on the first next(): write until the watcher picks a change up.
    const writer = setInterval(() => void writeFile(join(dir, 'tick.txt'), String(Date.now())), 100);
    try {
      const result = await first;
      if (!result.done) seen.push(...result.value.map((e) => e.type));
    } finally {
      clearInterval(writer);
    }
    await iterator.return();
    expect(seen.length).toBeGreaterThan(0);
    expect((await iterator.next()).done).toBe(true);
  });

  it('start() is idempotent, close() ends iterators, and asyncDispose closes', async () => {
    const dir = await fresh();
    const watcher = new FileWatcher(dir);
    const a = watcher.start();
    expect(watcher.start()).toBe(a);
    await a;
    const iterator = watcher[Symbol.asyncIterator]();
    const pending = iterator.next();
    await watcher[Symbol.asyncDispose]();
    expect(watcher.closed).toBe(true);
    expect(await pending).toEqual({ value: undefined, done: true });
    await expect(watcher.close()).resolves.toBeUndefined();
  });

  it('throws signal.reason from the iterator when aborted', async () => {
    const dir = await fresh();
    const controller = new AbortController();
    const watcher = new FileWatcher(dir, { signal: controller.signal });
    await watcher.start();
    const pending = watcher[Symbol.asyncIterator]().next();
    const reason = new Error('stop now');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(watcher.closed).toBe(true);
    await expect(new FileWatcher(dir, { signal: controller.signal }).start()).rejects.toBe(reason);
  });

  it('lets the process exit by itself after close()', async () => {
    const dir = await fresh();
    const entry = createRequire(import.meta.url).resolve('@fsw/watch');
    const script = `
      import { writeFileSync } from 'node:fs';
      const { FileWatcher } = await import(${JSON.stringify(entry)});
      const w = new FileWatcher(${JSON.stringify(dir)}, { debounceMs: 10 });
      await w.start();
      const it = w[Symbol.asyncIterator]();
      const next = it.next();
      const timer = setInterval(() => writeFileSync(${JSON.stringify(join(dir, 'x'))}, 'x'), 50);
      const got = await next;
      clearInterval(timer);
      await w.close();
      console.log('closed', got.value.length > 0);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (c, s) => resolve([c, s])),
    );
    clearTimeout(killer);
    expect({ code, signal, out: out.trim() }).toEqual({ code: 0, signal: null, out: 'closed true' });
  });
});

describe('paths', () => {
  it('reports paths under the path given, when it is a symlink to the folder', async () => {
    const real = await fresh();
    const links = await fresh('fsw-watch-link-');
    const link = join(links, 'project');
    await symlink(real, link);
    const { watcher, got } = await started(link);
    expect(watcher.path).toBe(link);
    await writeFile(join(real, 'a.txt'), '1');
    await got.until(() => got.events.length > 0);
    expect((await got.settle()).map((e) => e.path)).toEqual([join(link, 'a.txt')]);
  });
});

describe('errors', () => {
  it('rejects a missing path with E_NOT_FOUND and a file with E_NOT_DIR', async () => {
    const dir = await fresh();
    await writeFile(join(dir, 'file.txt'), '1');
    const missing = new FileWatcher(join(dir, 'nope')).start();
    await expect(missing).rejects.toSatisfy(
      (e) => WatchError.is(e) && e.code === 'E_NOT_FOUND' && e.path === join(dir, 'nope'),
    );
    const notDir = watch(join(dir, 'file.txt')).next();
    await expect(notDir).rejects.toSatisfy(
      (e) => WatchError.is(e) && e.code === 'E_NOT_DIR' && e.message.includes('file.txt'),
    );
    expect(() => new FileWatcher(dir, { debounceMs: -1 })).toThrow(/debounceMs/);
    // biome-ignore lint/suspicious/noExplicitAny: an invalid value on purpose, as from untyped JavaScript
    expect(() => new FileWatcher(dir, { types: ['moved' as any] })).toThrow(/moved/);
  });

  it('delivers the deletions, then throws E_NOT_FOUND and closes when the watched folder is deleted', async () => {
    const parent = await fresh();
    const dir = join(parent, 'watched');
    await mkdir(dir);
    await writeFile(join(dir, 'a.txt'), '1');
    const watcher = new FileWatcher(dir);
    const errors: unknown[] = [];
    watcher.on('error', (e) => errors.push(e));
    await watcher.start();
    const batches: string[] = [];
    const loop = (async () => {
      for await (const batch of watcher) batches.push(...batch.map((e) => show(dir, e)));
    })();
    // Observe the outcome at once: the rejection may come before the expectation below is attached.
    const outcome = loop.then(
      () => 'ended without an error',
      (error: unknown) => error,
    );
    await rm(dir, { recursive: true });
    const error = await outcome;
    expect(WatchError.is(error) && error.code === 'E_NOT_FOUND' && error.path === dir).toBe(true);
    expect(batches).toEqual(['deleted a.txt']);
    expect(errors).toHaveLength(1);
    expect(watcher.closed).toBe(true);
  });
});
