import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFsw } from './run-fsw.js';

const VECTORS = resolve(import.meta.dirname, '../../tree/test/fixtures/fstree-vectors.sh');
const BASIC = 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9';
const IGNORE = 'blake3:99af46374945808eec71de1df182d48c065bce036b93627d75a7343b8e7bbe55';

let tmp: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-cli-write-tree-'));
  execFileSync('bash', [VECTORS, tmp]);
  env = { FSTREE_CACHE: join(tmp, 'cache'), FSTREE_IGNORE: '', FSTREE_THREADS: '' };
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('fsw write-tree', () => {
  it('prints the fstree root digest and nothing else, storing into FSTREE_CACHE', async () => {
    const r = await runFsw(['write-tree', join(tmp, 'basic')], { env });
    expect(r).toMatchObject({ code: 0, stdout: `${BASIC}\n`, stderr: '' });
    expect((await readdir(join(tmp, 'cache', 'objects'))).length).toBeGreaterThan(5);
  });

  it('defaults to the current folder and reports counts with --json', async () => {
    const r = await runFsw(['write-tree', '--json', '--no-index'], { env, cwd: join(tmp, 'ignore') });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ digest: IGNORE, files: 6, filesHashed: 6, filesReused: 0 });
  });

  it('takes --cache, --ignore and --threads, or their FSTREE_* variables', async () => {
    const dir = join(tmp, 'opts');
    await mkdir(dir);
    await writeFile(join(dir, 'a.txt'), 'a');
    await writeFile(join(dir, 'b.txt'), 'b');
    await writeFile(join(dir, '.custom'), 'b.txt\n');
    const other = join(tmp, 'other-cache');
    const byFlag = await runFsw(
      ['write-tree', dir, '--cache', other, '--ignore', '.custom', '--threads', '2'],
      { env },
    );
    const byEnv = await runFsw(['write-tree', dir], {
      env: { FSTREE_CACHE: other, FSTREE_IGNORE: '.custom', FSTREE_THREADS: '2' },
    });
    const without = await runFsw(['write-tree', dir], { env });
    expect(byFlag.code).toBe(0);
    expect(byEnv.stdout).toBe(byFlag.stdout);
    expect(without.stdout).not.toBe(byFlag.stdout);
    const ls = await runFsw(['ls-tree', byFlag.stdout.trim()], { env: { ...env, FSTREE_CACHE: other } });
    expect(ls.stdout).not.toContain('b.txt');
    expect(ls.stdout).toContain('a.txt');
  });

  it('--threads N hashes and writes small files on N worker threads (1: none), to the same tree', async () => {
    for (const n of ['1', '3']) {
      const written = await runFsw(['write-tree', '--no-index', '--threads', n, join(tmp, 'basic')], { env });
      expect(written).toMatchObject({ code: 0, stdout: `${BASIC}\n` });
      const out = join(tmp, `threads-${n}`);
      expect((await runFsw(['checkout', '--threads', n, BASIC, out], { env })).code).toBe(0);
      expect((await runFsw(['write-tree', '--no-index', out], { env })).stdout).toBe(`${BASIC}\n`);
    }
  });

  it('reuses the index on a second run', async () => {
    const dir = join(tmp, 'basic');
    await runFsw(['write-tree', dir], { env });
    const r = await runFsw(['write-tree', '--json', dir], { env });
    expect(JSON.parse(r.stdout)).toMatchObject({ digest: BASIC, filesHashed: 0, filesReused: 5 });
  });

  it('fails with exit 1 on a missing folder and exit 2 on bad --threads', async () => {
    const missing = await runFsw(['write-tree', join(tmp, 'nope')], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^fsw: .*nope.*no such file/);
    expect(missing.stdout).toBe('');
    const bad = await runFsw(['write-tree', '--threads', 'many', join(tmp, 'basic')], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid thread count/);
  });

  it('a --cache path through a file fails with the store path and the cause, with or without an index', async () => {
    const dir = join(tmp, 'cache-through-file');
    await mkdir(dir);
    await writeFile(join(dir, 'a'), 'a');
    expect((await runFsw(['write-tree', dir], { env })).code).toBe(0);
    const file = join(tmp, 'cache-file');
    await writeFile(file, 'x');
    for (const args of [[], ['--no-index']]) {
      const r = await runFsw(['write-tree', ...args, '--cache', file, dir], { env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^fsw: cannot \\w+ (store )?object ${file}/objects/\\S+: not a directory \\(ENOTDIR\\)\n$`,
        ),
      );
    }
  });
});
