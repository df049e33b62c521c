import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runFsw } from './run-fsw.js';

let tmp: string;
let env: NodeJS.ProcessEnv;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-cli-qa-'));
  env = { FSTREE_CACHE: join(tmp, 'cache'), FSTREE_IGNORE: '', FSTREE_THREADS: '' };
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function writeTreeOf(dir: string): Promise<string> {
  const r = await runFsw(['write-tree', '-q', dir], { env });
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

describe('fsw diff exit codes, as diff(1)', () => {
  it('0 when equal, 1 when they differ, 2 on trouble (a missing object), whichever sides', async () => {
    const a = join(tmp, 'a');
    await mkdir(a);
    await writeFile(join(a, 'x'), 'x');
    const da = await writeTreeOf(a);
    expect(await runFsw(['diff', da, a], { env })).toMatchObject({ code: 0, stdout: '', stderr: '' });
    await writeFile(join(a, 'y'), 'y');
    const db = await writeTreeOf(a);
    expect(await runFsw(['diff', da, db], { env })).toMatchObject({ code: 1, stdout: 'A\ty\n', stderr: '' });
    expect(await runFsw(['diff', da, a], { env })).toMatchObject({ code: 1, stdout: 'A\ty\n' });

    const missing = `blake3:${'ab'.repeat(32)}`;
    for (const args of [
      [da, missing],
      [missing, a],
      [a, missing],
    ]) {
      const r = await runFsw(['diff', ...args], { env });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^fsw: .*not in the store/);
    }
    // Usage errors stay 2.
    expect((await runFsw(['diff', da, 'not-a-digest'], { env })).code).toBe(2);
  });

  it('says so in --help', async () => {
    const r = await runFsw(['diff', '--help'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('1 when they differ, 2 on trouble');
  });
});

describe('--verify of ls-tree and diff', () => {
  it('re-hashes the tree objects read: a corrupt one that still decodes fails (and is removed) instead of being used', async () => {
    const a = join(tmp, 'a');
    await mkdir(a);
    await writeFile(join(a, 'x'), 'x');
    const root = await writeTreeOf(a);
    const hex = root.slice('blake3:'.length);
    const object = join(tmp, 'cache', 'objects', hex.slice(0, 2), `${hex.slice(2)}.tree`);
    // One hex digit of the child's digest changed: the tree still decodes, naming another object.
    const bytes = await readFile(object);
    const at = 4 + 8 + 1 + 8 + 'blake3:'.length;
    bytes[at] = bytes[at] === 0x61 ? 0x62 : 0x61;
    await writeFile(object, bytes);

    const plain = await runFsw(['ls-tree', root], { env });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('\tx\n');

    // (A folder equal to the tree would be matched by its root digest, reading nothing.)
    await writeFile(join(a, 'y'), 'y');
    const diff = await runFsw(['diff', '--verify', root, a], { env });
    expect(diff.code).toBe(2);
    expect(diff.stderr).toMatch(/^fsw: /);
    // Removed from the store as corrupt: the plain command now finds it missing.
    expect((await runFsw(['ls-tree', root], { env })).stderr).toMatch(/not in the store/);

    await writeFile(object, bytes);
    const checked = await runFsw(['ls-tree', '--verify', root], { env });
    expect(checked.code).toBe(1);
    expect(checked.stdout).toBe('');
    expect(checked.stderr).toMatch(/^fsw: /);
  });
});

describe('fsw checkout --verify', () => {
  it('refuses a file object whose bytes were corrupted in the store, where a plain checkout writes them', async () => {
    const a = join(tmp, 'a');
    await mkdir(a);
    await writeFile(join(a, 'x'), 'important content\n');
    const root = await writeTreeOf(a);
    const hash = await runFsw(['hash', join(a, 'x')], { env });
    const hex = hash.stdout.split(' ')[0]!;
    const object = join(tmp, 'cache', 'objects', hex.slice(0, 2), `${hex.slice(2)}.file`);
    await writeFile(object, 'Xmportant content\n');

    const plain = await runFsw(['checkout', root, join(tmp, 'plain')], { env });
    expect(plain.code).toBe(0);
    expect(await readFile(join(tmp, 'plain', 'x'), 'utf8')).toBe('Xmportant content\n');

    const verified = await runFsw(['checkout', '--verify', root, join(tmp, 'verified')], { env });
    expect(verified.code).toBe(1);
    expect(verified.stderr).toMatch(
      /^fsw: object blake3:[0-9a-f]{64} in the store does not match its digest/,
    );
    await expect(readFile(join(tmp, 'verified', 'x'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    // Removed from the store as corrupt, so that a pull can fetch it again.
    await expect(readFile(object)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('fsw write-tree over a .fstree that is not a folder', () => {
  it('succeeds, leaves it as it is, and says on stderr that no index was saved', async () => {
    const a = join(tmp, 'a');
    await mkdir(a);
    await writeFile(join(a, 'x'), 'x');
    await writeFile(join(a, '.fstree'), 'my notes');
    const r = await runFsw(['write-tree', a], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^blake3:[0-9a-f]{64}\n$/);
    expect(r.stderr).toBe(
      `fsw: note: ${join(a, '.fstree')} is not a folder: no index saved (the next run hashes every file again)\n`,
    );
    expect(await readFile(join(a, '.fstree'), 'utf8')).toBe('my notes');
    expect((await runFsw(['write-tree', '-q', a], { env })).stderr).toBe('');
  });
});
