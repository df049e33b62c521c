import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFsw } from './run-fsw.js';

const VECTORS = resolve(import.meta.dirname, '../../tree/test/fixtures/fstree-vectors.sh');
const BASIC = 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9';

let tmp: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-cli-checkout-'));
  execFileSync('bash', [VECTORS, tmp]);
  env = { FSTREE_CACHE: join(tmp, 'cache'), FSTREE_IGNORE: '', FSTREE_THREADS: '' };
  const r = await runFsw(['write-tree', join(tmp, 'basic')], { env });
  expect(r.stdout.trim()).toBe(BASIC);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('fsw checkout', () => {
  it('writes the tree into a new folder and prints the digest', async () => {
    const out = join(tmp, 'out');
    const r = await runFsw(['checkout', BASIC, out], { env });
    expect(r).toMatchObject({ code: 0, stdout: `${BASIC}\n`, stderr: '' });
    expect(await readFile(join(out, 'hello.txt'), 'utf8')).toBe('hello world\n');
    expect(await readlink(join(out, 'dirlink'))).toBe('sub/deeper');
    const again = await runFsw(['write-tree', out], { env });
    expect(again.stdout).toBe(`${BASIC}\n`);
  });

  it('accepts a bare hex digest and defaults to the current folder; --json reports counts', async () => {
    const out = join(tmp, 'here');
    await mkdir(out);
    const r = await runFsw(['checkout', '--json', BASIC.slice('blake3:'.length)], { env, cwd: out });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ digest: BASIC, filesWritten: 5, symlinksWritten: 2 });
  });

  it('refuses a folder with foreign content without --force (exit 1), and overwrites it with --force', async () => {
    const out = join(tmp, 'foreign');
    await mkdir(join(out, 'mine'), { recursive: true });
    await writeFile(join(out, 'mine', 'work.txt'), 'precious');
    const r = await runFsw(['checkout', BASIC, out], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fsw: refusing to check out/);
    expect(await readFile(join(out, 'mine', 'work.txt'), 'utf8')).toBe('precious');
    const forced = await runFsw(['checkout', '--force', BASIC, out], { env });
    expect(forced.code).toBe(0);
    const diff = await runFsw(['diff', BASIC, out], { env });
    expect(diff).toMatchObject({ code: 0, stdout: '' });
  });

  it('exits 2 on an invalid digest and 1 on one missing from the store', async () => {
    const bad = await runFsw(['checkout', 'blake3:xyz', join(tmp, 'x')], { env });
    expect(bad.code).toBe(2);
    const missing = await runFsw(['checkout', `blake3:${'0'.repeat(64)}`, join(tmp, 'x')], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not in the store/);
  });
});

describe('fsw ls-tree', () => {
  it('lists entries with mode, type, digest and path; -r recurses; --json', async () => {
    const top = await runFsw(['ls-tree', BASIC], { env });
    expect(top.code).toBe(0);
    expect(top.stdout.split('\n')).toContain(
      '100755 file blake3:4b694fa6468140836e2f43625aca1150ec72032dc23a12e13416ca026c647ef3\trun.sh',
    );
    expect(top.stdout).toContain('120777 symlink -\tdirlink -> sub/deeper');
    expect(top.stdout).toContain(
      '040755 tree blake3:970bf575428226f125f77576c345916f86d488d6b5da1bb9992ce23368de5b1b\tsub',
    );
    expect(top.stdout).not.toContain('numbers.txt');
    const all = await runFsw(['ls-tree', '-r', BASIC], { env });
    expect(all.stdout).toContain('\tsub/deeper/nested.txt');
    const json = await runFsw(['ls-tree', '--json', BASIC], { env });
    const first = JSON.parse(json.stdout.split('\n')[0]!);
    expect(first).toEqual({
      name: 'dirlink',
      digest: '',
      type: 'symlink',
      mode: 0o777,
      target: 'sub/deeper',
      path: 'dirlink',
    });
  });
});

describe('fsw diff', () => {
  it('prints A/D/M/T lines and exits 1 when two trees differ, 0 when equal', async () => {
    const dir = join(tmp, 'changed');
    await runFsw(['checkout', BASIC, dir], { env });
    await writeFile(join(dir, 'hello.txt'), 'changed\n');
    await writeFile(join(dir, 'added.txt'), 'new\n');
    await rm(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'sub'), 'now a file');
    const changed = (await runFsw(['write-tree', dir], { env })).stdout.trim();
    const r = await runFsw(['diff', BASIC, changed], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        'A\tadded.txt',
        'M\thello.txt',
        'T\tsub',
        'D\tsub/deeper',
        'D\tsub/deeper/nested.txt',
        'D\tsub/numbers.txt',
        '',
      ].join('\n'),
    );
    // A folder on one side is compared as it is now.
    const folder = await runFsw(['diff', changed, dir], { env });
    expect(folder).toMatchObject({ code: 0, stdout: '' });
    const reversed = await runFsw(['diff', dir, BASIC], { env });
    expect(reversed.stdout).toContain('D\tadded.txt');
    expect((await runFsw(['diff', BASIC, BASIC], { env })).code).toBe(0);
  });
});

describe('fsw evict', () => {
  it('shrinks the store per --cache-size / --cache-retention or FSTREE_CACHE_SIZE / FSTREE_CACHE_RETENTION', async () => {
    const cache = join(tmp, 'evict-cache');
    const local = { ...env, FSTREE_CACHE: cache };
    await runFsw(['write-tree', '--no-index', join(tmp, 'basic')], { env: local });
    const kept = await runFsw(['evict', '--json'], { env: local });
    expect(kept.code).toBe(0);
    expect(JSON.parse(kept.stdout)).toMatchObject({ removed: 0, bytesFreed: 0 });
    // Everything is younger than the default hour of retention, even with a zero size limit.
    const young = await runFsw(['evict', '--json'], { env: { ...local, FSTREE_CACHE_SIZE: '0' } });
    expect(JSON.parse(young.stdout)).toMatchObject({ removed: 0 });
    const all = await runFsw(['evict', '--json'], {
      env: { ...local, FSTREE_CACHE_SIZE: '0', FSTREE_CACHE_RETENTION: '0s' },
    });
    expect(JSON.parse(all.stdout)).toMatchObject({ objectsLeft: 0, bytesLeft: 0 });
    expect(JSON.parse(all.stdout).removed).toBeGreaterThan(5);
    const text = await runFsw(
      ['evict', '--cache', cache, '--cache-size', '1GiB', '--cache-retention', '1h'],
      { env },
    );
    expect(text.stdout).toMatch(/^evicted 0 objects/);
    const bad = await runFsw(['evict', '--cache-size', 'lots'], { env: local });
    expect(bad.code).toBe(2);
  });
});
