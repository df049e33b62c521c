import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, open, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TreeError } from '@fsw/errors';
import {
  checkout,
  diffTrees,
  hashTree,
  lsTree,
  openStore,
  readTree,
  verifyTree,
  type WriteTreeProgress,
  writeTree,
} from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const EMPTY_TREE = 'blake3:2c86712e4dea8735b1c6bd968b4d256d9ff42e24df47a4e52f8a3b04db647c16';
let tmp: string;
let src: string;
let store: ReturnType<typeof openStore>;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-write-'));
  src = join(tmp, 'src');
  await mkdir(src);
  store = openStore(join(tmp, 'cache'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The built `@fsw/tree`, as a URL a child process can import. */
const TREE_ENTRY = pathToFileURL(createRequire(import.meta.url).resolve('@fsw/tree')).href;

/** Runs an ES module script in a child node process as the given user. */
function runAs(
  uid: number,
  gid: number,
  source: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: ['ignore', 'pipe', 'pipe'],
      uid,
      gid,
      cwd: '/',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function names(digest: string): Promise<string[]> {
  return (await lsTree(digest, { store, recursive: true })).map((e) => e.path);
}

/** Runs writeTree and returns the root digest with the final progress report. */
async function run(options: Parameters<typeof writeTree>[1] = {}) {
  let last: WriteTreeProgress | undefined;
  const digest = await writeTree(src, { store, ...options, onProgress: (p) => (last = p) });
  expect(last?.done).toBe(true);
  return { digest, progress: last! };
}

describe('writeTree', () => {
  it('honours .fstreeignore with full gitignore semantics, negation included', async () => {
    await writeFile(join(src, '.fstreeignore'), '*.log\n!keep.log\n/build/\ndocs/**/*.tmp\n');
    for (const f of ['a.log', 'keep.log', 'x.txt']) await writeFile(join(src, f), f);
    await mkdir(join(src, 'build'));
    await writeFile(join(src, 'build', 'out.o'), 'o');
    await mkdir(join(src, 'sub', 'build'), { recursive: true });
    await writeFile(join(src, 'sub', 'build', 'kept'), 'anchored pattern only matches at the root');
    await mkdir(join(src, 'docs', 'deep'), { recursive: true });
    await writeFile(join(src, 'docs', 'deep', 'x.tmp'), 't');
    const { digest } = await run();
    expect(await names(digest)).toEqual([
      '.fstreeignore',
      'docs',
      'docs/deep',
      'keep.log',
      'sub',
      'sub/build',
      'sub/build/kept',
      'x.txt',
    ]);
    // The deep folder whose only child is ignored stays, as an empty tree.
    const docs = await lsTree(digest, { store, recursive: true });
    expect(docs.find((e) => e.path === 'docs/deep')?.digest).toBe(EMPTY_TREE);
  });

  it('uses the ignore file given, or none', async () => {
    await writeFile(join(src, '.myignore'), 'secret\n');
    await writeFile(join(src, '.fstreeignore'), 'x.txt\n');
    await writeFile(join(src, 'secret'), 's');
    await writeFile(join(src, 'x.txt'), 'x');
    expect(await names((await run({ ignoreFile: '.myignore' })).digest)).toEqual([
      '.fstreeignore',
      '.myignore',
      'x.txt',
    ]);
    expect(await names((await run({ ignoreFile: '' })).digest)).toHaveLength(4);
  });

  it('never includes .fstree folders, even when the ignore file tries to re-include them', async () => {
    await writeFile(join(src, '.fstreeignore'), '!.fstree/\n');
    await writeFile(join(src, 'a'), 'a');
    await mkdir(join(src, 'nested', '.fstree'), { recursive: true });
    await writeFile(join(src, 'nested', '.fstree', 'index'), 'junk');
    const first = await run();
    expect(await names(first.digest)).toEqual(['.fstreeignore', 'a', 'nested']);
    // The index written by the first run changes nothing.
    expect((await run()).digest).toBe(first.digest);
  });

  it('without an ignore file, leaves out .fstree folders at any depth but keeps a file of that name', async () => {
    await writeFile(join(src, 'a'), 'a');
    await mkdir(join(src, 'nested', '.fstree'), { recursive: true });
    await writeFile(join(src, 'nested', '.fstree', 'index'), 'junk');
    await mkdir(join(src, 'other'));
    await writeFile(join(src, 'other', '.fstree'), 'a plain file');
    await mkdir(join(src, 'other', 'deep', 'er'), { recursive: true });
    await writeFile(join(src, 'other', 'deep', 'er', 'z'), 'z');
    const first = await run();
    expect(await names(first.digest)).toEqual([
      'a',
      'nested',
      'other',
      'other/.fstree',
      'other/deep',
      'other/deep/er',
      'other/deep/er/z',
    ]);
    expect(first.progress.filesTotal).toBe(3);
    expect((await run()).digest).toBe(first.digest);
  });

  it('leaves out the store when it lives inside the tree', async () => {
    await writeFile(join(src, 'a'), 'a');
    const inside = openStore(join(src, 'cache [1]*'));
    const { digest } = await run({ store: inside });
    expect((await lsTree(digest, { store: inside, recursive: true })).map((e) => e.path)).toEqual(['a']);
    // Same digest as a folder holding only `a`.
    const other = join(tmp, 'other');
    await mkdir(other);
    await writeFile(join(other, 'a'), 'a');
    expect(digest).toBe(await writeTree(other, { store, index: false }));
  });

  it('skips sockets and FIFOs, records symlinks unresolved (even dangling)', async () => {
    await writeFile(join(src, 'f'), 'f');
    execFileSync('mkfifo', [join(src, 'fifo')]);
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(join(src, 'sock'), resolve));
    try {
      await symlink('/nonexistent/target', join(src, 'dangling'));
      await symlink('.', join(src, 'loop'));
      const { digest } = await run();
      const entries = await readTree(digest, { store });
      expect(entries.map((e) => [e.name, e.type, e.target])).toEqual([
        ['dangling', 'symlink', '/nonexistent/target'],
        ['f', 'file', undefined],
        ['loop', 'symlink', '.'],
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('reports a missing root, a file root, and a name that is not UTF-8 with TreeError', async () => {
    await expect(writeTree(join(tmp, 'nope'), { store })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await writeFile(join(tmp, 'file'), 'x');
    await expect(writeTree(join(tmp, 'file'), { store })).rejects.toMatchObject({ code: 'E_NOT_DIR' });
    await writeFile(Buffer.concat([Buffer.from(`${src}/bad-`), Buffer.from([0xff, 0xfe])]), 'x');
    const err = await writeTree(src, { store }).catch((e: unknown) => e);
    expect(TreeError.is(err) && err.code).toBe('E_INVALID_ARGUMENT');
    expect(String(err)).toMatch(/not valid UTF-8/);
  });

  /** writeTree's outcome as `nobody` when run as root (root reads anything), else as the current user. */
  async function outcomeAsNobody(
    ctx: { skip: (note: string) => void },
    readable: readonly string[],
    options: { workers?: number } = {},
  ) {
    let out: { name?: unknown; code?: unknown; path?: unknown; digest?: unknown; loadError?: unknown };
    if (process.getuid?.() !== 0) {
      try {
        out = { digest: await writeTree(src, { store, ...options }) };
      } catch (e) {
        const err = e as { name?: unknown; code?: unknown; path?: unknown };
        out = { name: err.name, code: err.code, path: err.path };
      }
      return out;
    }
    // A tree and store `nobody` can reach.
    const storeDir = join(tmp, 'nobody-store');
    await mkdir(storeDir, { recursive: true });
    await chmod(storeDir, 0o777);
    await chmod(tmp, 0o755);
    await chmod(src, 0o755);
    for (const path of readable) await chmod(path, 0o644);
    const script = `let tree;
try { tree = await import(${JSON.stringify(TREE_ENTRY)}); }
catch (e) { console.log(JSON.stringify({ loadError: String(e) })); process.exit(0); }
try {
  const digest = await tree.writeTree(${JSON.stringify(src)}, { store: tree.openStore(${JSON.stringify(storeDir)}), ...${JSON.stringify(options)} });
  console.log(JSON.stringify({ digest }));
} catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, path: e.path })); }`;
    const r = await runAs(65534, 65534, script);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    out = JSON.parse(r.stdout);
    // Skip only where `nobody` cannot load the built package (e.g. a checkout under a private home directory).
    if (out.loadError !== undefined) ctx.skip(`user nobody cannot load @fsw/tree: ${String(out.loadError)}`);
    return out;
  }

  it('reports an unreadable file as E_PERMISSION naming it (as root, run in a child as nobody)', async (ctx) => {
    const locked = join(src, 'locked');
    await writeFile(join(src, 'ok'), 'o');
    await writeFile(locked, 'x');
    await chmod(locked, 0);
    const out = await outcomeAsNobody(ctx, [join(src, 'ok')]);
    expect(out).toEqual({ name: 'TreeError', code: 'E_PERMISSION', path: locked });
  });

  it('reports an entry it can list but not stat as E_PERMISSION, on either thread (as nobody)', async (ctx) => {
    // A folder readable but not searchable: its names list, its entries do not lstat.
    const listOnly = join(src, 'list-only');
    await mkdir(listOnly);
    await writeFile(join(listOnly, 'hidden'), 'h');
    await chmod(listOnly, 0o644);
    for (const workers of [0, 1]) {
      const out = await outcomeAsNobody(ctx, [], { workers });
      expect(out).toEqual({ name: 'TreeError', code: 'E_PERMISSION', path: join(listOnly, 'hidden') });
    }
  });

  it('gives the same tree with the stat thread as without it', async () => {
    for (let d = 0; d < 5; d++) {
      await mkdir(join(src, `d${d}`, 'inner'), { recursive: true });
      for (let f = 0; f < 300; f++)
        await writeFile(join(src, `d${d}`, f % 7 === 0 ? 'inner' : '', `f${f}`), `${d}/${f}`);
    }
    await symlink('d0/f1', join(src, 'link'));
    const plain = await hashTree(src, { index: false, workers: 0 });
    expect(await writeTree(src, { store, workers: 1 })).toBe(plain);
    // And again from the index it wrote (records found in the scan's order).
    await writeFile(join(src, 'd3', 'f5'), 'changed');
    expect(await writeTree(src, { store, workers: 1 })).toBe(
      await hashTree(src, { index: false, workers: 0 }),
    );
  });

  it('stops at the first file it cannot store, with that error', async () => {
    await mkdir(join(src, 'd'));
    for (let i = 0; i < 300; i++) await writeFile(join(src, 'd', `f${i}`), `${i}`);
    // A store whose root is a regular file: every write fails.
    await writeFile(join(tmp, 'not-a-dir'), 'x');
    const broken = openStore(join(tmp, 'not-a-dir'));
    const err = await writeTree(src, { store: broken, index: false }).catch((e: unknown) => e);
    expect(TreeError.is(err) && err.code).toBe('E_NOT_DIR');
  });

  it('throws signal.reason when aborted', async () => {
    for (let i = 0; i < 50; i++) await writeFile(join(src, `f${i}`), `${i}`);
    const reason = new Error('stop');
    await expect(writeTree(src, { store, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const controller = new AbortController();
    const pending = writeTree(src, {
      store,
      index: false,
      concurrency: 1,
      onProgress: (p) => {
        if (p.filesDone >= 1) controller.abort(reason);
      },
      signal: controller.signal,
    });
    await expect(pending).rejects.toBe(reason);
  });
});

describe('the index', () => {
  async function fileWithStat(name: string, content: string) {
    const path = join(src, name);
    await writeFile(path, content);
    // An mtime clearly in the past, so that no record is "racy".
    const t = new Date(Date.now() - 60_000);
    await utimes(path, t, t);
    return path;
  }

  it('keeps index records of any name, and only rewrites the index when something changed', async () => {
    await mkdir(join(src, 'd\u00e9j\u00e0 vu', '\u{1F600} sub'), { recursive: true });
    await fileWithStat('d\u00e9j\u00e0 vu/\u{1F600} sub/na\u00efve\nname', 'x');
    await fileWithStat('plain', 'y');
    const first = await run();
    expect(first.progress).toMatchObject({ filesHashed: 2, filesReused: 0 });
    const index = join(src, '.fstree', 'index');
    const before = await stat(index);
    const second = await run();
    expect(second.progress).toMatchObject({ filesHashed: 0, filesReused: 2 });
    expect(second.digest).toBe(first.digest);
    expect((await stat(index)).ino).toBe(before.ino);
  });

  it('reuses digests of unchanged files without reading them, and re-hashes changed ones', async () => {
    for (let i = 0; i < 10; i++) await fileWithStat(`f${i}`, `content ${i}`);
    const first = await run();
    expect(first.progress).toMatchObject({ filesTotal: 10, filesHashed: 10, filesReused: 0 });
    const second = await run();
    expect(second.progress).toMatchObject({ filesHashed: 0, filesReused: 10 });
    expect(second.digest).toBe(first.digest);

    // New content and size: re-hashed.
    await writeFile(join(src, 'f1'), 'something longer');
    const third = await run();
    expect(third.progress).toMatchObject({ filesHashed: 1, filesReused: 9 });
    expect(third.digest).not.toBe(first.digest);

    // Same size, same mtime, same inode, different bytes: the index is trusted, so the file is not read
    // (the digest stays the old one), exactly as fstree and git behave.
    const f2 = join(src, 'f2');
    const before = await stat(f2);
    const handle = await open(f2, 'r+');
    await handle.write('X', 0);
    await handle.close();
    await utimes(f2, before.atime, before.mtime);
    const fourth = await run();
    expect(fourth.progress).toMatchObject({ filesHashed: 0, filesReused: 10 });
    expect(fourth.digest).toBe(third.digest);

    // A mode change alone is seen.
    await chmod(f2, 0o755);
    const fifth = await run();
    expect(fifth.progress).toMatchObject({ filesHashed: 1 });
    expect(fifth.digest).not.toBe(third.digest);
    expect(fifth.digest).toBe(await hashTree(src, { index: false }));

    // Without the index everything is read.
    expect((await run({ index: false })).progress).toMatchObject({ filesHashed: 10, filesReused: 0 });
  });

  it('re-stores a file whose object left the store, and ignores a damaged index', async () => {
    await fileWithStat('a', 'alpha');
    await fileWithStat('b', 'beta');
    const first = await run();
    await store.evict({ maxBytes: 0, retentionMs: 0 });
    const again = await run();
    expect(again.digest).toBe(first.digest);
    expect(again.progress).toMatchObject({ filesHashed: 2 });
    expect(await store.has((await readTree(first.digest, { store }))[0]!.digest)).toBe(true);

    await writeFile(join(src, '.fstree', 'index'), 'garbage\u0000x');
    const third = await run();
    expect(third.digest).toBe(first.digest);
    expect(third.progress).toMatchObject({ filesHashed: 2 });
  });

  it('reuses unchanged folder trees, and sees every kind of change below them', async () => {
    for (const d of ['a/deep', 'b', 'c']) await mkdir(join(src, d), { recursive: true });
    for (const f of ['a/deep/x', 'a/deep/y', 'a/z', 'b/one', 'b/two', 'c/only', 'top']) {
      await fileWithStat(f, `content of ${f}`);
    }
    const truth = () => hashTree(src, { index: false });
    await run();
    const changes: (() => Promise<unknown>)[] = [
      () => writeFile(join(src, 'a/deep/x'), 'changed, longer content'),
      () => fileWithStat('a/deep/new', 'added deep down'),
      () => rm(join(src, 'b/two')),
      // Renamed: same number of entries, one name differs.
      () => rename(join(src, 'b/one'), join(src, 'b/uno')),
      () => chmod(join(src, 'c'), 0o700),
      () => symlink('only', join(src, 'c/link')),
      () => rm(join(src, 'c/link')),
      () => rm(join(src, 'a/deep'), { recursive: true }),
      () => mkdir(join(src, 'c/empty')),
    ];
    for (const change of changes) {
      await change();
      const { digest } = await run();
      expect(digest).toBe(await truth());
      // And the next run, from the index just written, agrees.
      expect((await run()).digest).toBe(digest);
    }
  });

  it('trusts the store folders stamped with the index only while nothing was removed from them', async () => {
    await fileWithStat('a', 'alpha');
    await fileWithStat('b', 'beta');
    const first = await run();
    const entries = await readTree(first.digest, { store });
    const object = store.path(entries[0]!.digest);
    const fan = join(object, '..');
    // Stamps are taken of folders whose mtime is settled (older than a moment): age them, then stamp them.
    const old = new Date(Date.now() - 60_000);
    for (const e of entries) await utimes(join(store.path(e.digest), '..'), old, old);
    await writeFile(join(src, 'c'), 'new file, new index');
    await run();
    await rm(join(src, 'c'));
    await run();

    // An object removed behind the index's back, its folder's mtime restored: the stamp still holds and the object
    // is not looked for (the case the stamp cannot see, like a file rewritten with its mtime restored).
    const fanTimes = await stat(fan);
    await rm(object);
    await utimes(fan, fanTimes.atime, fanTimes.mtime);
    expect((await run()).progress).toMatchObject({ filesHashed: 0, filesReused: 2 });

    // Removed the normal way (eviction, rm): the folder changed, so the object is looked for and stored again.
    await run({ index: false });
    await rm(object);
    const again = await run();
    expect(again.progress).toMatchObject({ filesHashed: 1, filesReused: 1 });
    expect(await store.has(entries[0]!.digest)).toBe(true);
    expect(again.digest).toBe(first.digest);
  });

  it('takes nothing but file records from an index written by a checkout', async () => {
    await mkdir(join(src, 'sub'));
    await fileWithStat('sub/f', 'f');
    await fileWithStat('g', 'g');
    const digest = (await run()).digest;
    const out = join(tmp, 'out');
    await checkout(digest, out, { store });
    await writeFile(join(out, 'sub', 'f'), 'changed');
    const next = await writeTree(out, { store });
    expect(next).toBe(await hashTree(out, { index: false }));
    expect(next).not.toBe(digest);
  });

  it('does not trust a record whose mtime is not older than the index itself', async () => {
    const a = await fileWithStat('a', 'alpha');
    const { mtime } = await stat(a);
    await run();
    // The index written in the same clock tick as the file's last change: a later change within that tick would
    // leave size, mtime and inode as recorded, so the record must not be trusted.
    const index = join(src, '.fstree', 'index');
    await utimes(index, mtime, mtime);
    await writeFile(a, 'omega');
    await utimes(a, mtime, mtime);
    const next = await run();
    expect(next.progress).toMatchObject({ filesHashed: 1 });
    expect(next.digest).toBe(await hashTree(src, { index: false }));
  });
});

describe('diffTrees and verifyTree', () => {
  it('lists added, removed, modified and type-changed paths', async () => {
    await mkdir(join(src, 'dir', 'inner'), { recursive: true });
    await writeFile(join(src, 'dir', 'inner', 'x'), 'x');
    await writeFile(join(src, 'same'), 'same');
    await writeFile(join(src, 'edit'), 'v1');
    await writeFile(join(src, 'mode'), 'm');
    await writeFile(join(src, 'was-file'), 'f');
    await symlink('same', join(src, 'link'));
    const a = await writeTree(src, { store, index: false });

    await rm(join(src, 'dir'), { recursive: true });
    await writeFile(join(src, 'edit'), 'v2');
    await chmod(join(src, 'mode'), 0o700);
    await rm(join(src, 'was-file'));
    await mkdir(join(src, 'was-file'));
    await writeFile(join(src, 'was-file', 'child'), 'c');
    await rm(join(src, 'link'));
    await symlink('edit', join(src, 'link'));
    await writeFile(join(src, 'new'), 'n');
    const b = await writeTree(src, { store, index: false });

    expect(await diffTrees(a, b, { store })).toEqual({
      added: ['new', 'was-file/child'],
      removed: ['dir', 'dir/inner', 'dir/inner/x'],
      modified: ['edit', 'link', 'mode'],
      typeChanged: ['was-file'],
    });
    expect(await diffTrees(a, a, { store })).toEqual({
      added: [],
      removed: [],
      modified: [],
      typeChanged: [],
    });

    const v = await verifyTree(src, a, { store });
    expect(v.equal).toBe(false);
    expect(v.digest).toBe(b);
    expect(v.added).toEqual(['new', 'was-file/child']);
    expect((await verifyTree(src, b, { store })).equal).toBe(true);
  });
});
