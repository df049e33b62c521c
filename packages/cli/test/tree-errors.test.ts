import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFsw } from './run-fsw.js';

let tmp: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-cli-tree-errors-'));
  env = { FSTREE_CACHE: join(tmp, 'cache'), FSTREE_IGNORE: '', FSTREE_THREADS: '' };
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('fsw ls-tree, checkout and diff given the digest of a file object', () => {
  it('say it is a file object, not a tree', async () => {
    const dir = join(tmp, 'src');
    await mkdir(dir);
    await writeFile(join(dir, 't'), 'top\n');
    const tree = (await runFsw(['write-tree', '--no-index', dir], { env })).stdout.trim();
    const file = (await runFsw(['ls-tree', tree], { env })).stdout.split(/\s+/)[2]!;
    expect(file).toMatch(/^blake3:[0-9a-f]{64}$/);
    for (const args of [
      ['ls-tree', file],
      ['ls-tree', '--verify', file],
      ['checkout', file, join(tmp, 'out')],
      ['diff', file, tree],
    ]) {
      const r = await runFsw(args, { env });
      expect(r.stderr).toBe(`fsw: ${file} is a file object, not a tree\n`);
      expect(r.code).not.toBe(0);
    }
  });
});

describe('fsw ls-tree -r, checkout and diff with an object missing below the tree', () => {
  it('name its path in the tree, with its digest', async () => {
    const dir = join(tmp, 'paths');
    await mkdir(join(dir, 'd', 'e'), { recursive: true });
    await writeFile(join(dir, 'd', 'c'), 'c\n');
    await writeFile(join(dir, 'd', 'e', 'f'), 'f\n');
    const root = (await runFsw(['write-tree', '--no-index', dir], { env })).stdout.trim();
    const lines = (await runFsw(['ls-tree', '-r', root], { env })).stdout.trim().split('\n');
    const digestOf = (path: string) => lines.find((l) => l.endsWith(`\t${path}`))!.split(/\s+/)[2]!;
    const objectFile = (digest: string, kind: string) =>
      join(tmp, 'cache', 'objects', digest.slice(7, 9), `${digest.slice(9)}.${kind}`);
    const c = digestOf('d/c');
    const e = digestOf('d/e');
    const cache = join(tmp, 'cache');

    await unlink(objectFile(c, 'file'));
    const file = await runFsw(['checkout', root, join(tmp, 'out')], { env });
    expect(file.stderr).toBe(`fsw: object ${c} (d/c) of tree ${root} is not in the store ${cache}\n`);

    await unlink(objectFile(e, 'tree'));
    await writeFile(join(dir, 'd', 'e', 'g'), 'g\n');
    for (const args of [
      ['ls-tree', '-r', root],
      ['checkout', root, join(tmp, 'out')],
      ['diff', root, dir],
    ]) {
      const r = await runFsw(args, { env });
      expect(r.stderr).toBe(`fsw: tree ${e} (d/e) of tree ${root} is not in the store ${cache}\n`);
      expect(r.code).not.toBe(0);
    }
  });
});
