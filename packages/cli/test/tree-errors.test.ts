import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
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
