import { join } from 'node:path';
import { WalkError } from '@fsw/errors';
import { walk } from '@fsw/walk';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { collect, makeTree, removeDir, tempDir } from './fixtures.js';

// Directories to remove just before `readdirSync` reads them: a directory that vanishes between being listed in its
// parent and being read, at a moment no timing-based test can hit reliably.
const vanishing = vi.hoisted(() => new Set<string>());
// Milliseconds each `readdirSync` takes at least: a slow disk, to see that the event loop still gets turns.
const slow = vi.hoisted(() => ({ ms: 0 }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readdirSync = ((path: string, options?: unknown) => {
    if (vanishing.has(String(path))) fs.rmSync(path, { recursive: true });
    for (const until = performance.now() + slow.ms; performance.now() < until; );
    return fs.readdirSync(path, options as { withFileTypes: true });
  }) as typeof fs.readdirSync;
  return { ...fs, default: { ...fs, readdirSync }, readdirSync };
});

let root: string;

beforeEach(async () => {
  root = await tempDir();
  vanishing.clear();
  slow.ms = 0;
});

afterEach(async () => {
  await removeDir(root);
});

describe('syncReaddir', () => {
  it('reads a tree of many directories like the asynchronous reader, giving the event loop turns', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 400; i++) files[`d${i % 40}/e${i % 7}/f${i}.txt`] = '';
    await makeTree(root, files);
    const rels = (entries: { relativePath: string }[]) => entries.map((e) => e.relativePath).sort();
    const sync = await collect(root, { syncReaddir: true, type: 'file' });
    expect(rels(sync)).toEqual(rels(await collect(root, { type: 'file' })));
    expect(sync).toHaveLength(400);
    // 321 directories at 1 ms each: the reads must leave the event loop turns (one every few ms), not block it.
    slow.ms = 1;
    let turns = 0;
    const ticking = setInterval(() => turns++, 1);
    await collect(root, { syncReaddir: true, type: 'file' });
    clearInterval(ticking);
    expect(turns).toBeGreaterThanOrEqual(10);
  });

  it('reports a directory that vanished before it was read, as onError decides', async () => {
    await makeTree(root, { 'a/x': '', 'b/y': '' });
    vanishing.add(join(root, 'a'));
    const errors: string[] = [];
    const iterable = walk(root, {
      syncReaddir: true,
      onError: (e) => {
        errors.push(`${e.code} ${e.path}`);
        return 'skip';
      },
    });
    const names: string[] = [];
    for await (const e of iterable) names.push(e.relativePath);
    expect(names.sort()).toEqual(['a', 'b', 'b/y']);
    expect(errors).toEqual([`E_NOT_FOUND ${join(root, 'a')}`]);
    expect(iterable.skipped).toBe(1);

    await makeTree(root, { 'a/x': '' });
    await expect(collect(root, { syncReaddir: true })).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_NOT_FOUND' && e.path === join(root, 'a'),
    );
  });

  it('throws E_NOT_FOUND for a root that vanished before it was read', async () => {
    await makeTree(root, { 'a/x': '' });
    vanishing.add(join(root, 'a'));
    await expect(collect(join(root, 'a'), { syncReaddir: true, onError: () => 'skip' })).rejects.toSatisfy(
      (e) => WalkError.is(e) && e.code === 'E_NOT_FOUND',
    );
  });

  it('aborts with signal.reason between reads', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 200; i++) files[`d${i}/f`] = '';
    await makeTree(root, files);
    const controller = new AbortController();
    const reason = new Error('stop');
    let seen = 0;
    const run = async () => {
      for await (const _ of walk(root, { syncReaddir: true, signal: controller.signal })) {
        if (++seen === 1) controller.abort(reason);
      }
    };
    await expect(run()).rejects.toBe(reason);
    expect(seen).toBe(1);
  });
});
