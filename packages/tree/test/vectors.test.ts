import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeTree, hashTree, openStore, writeTree } from '@fsw/tree';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The fstree test vectors: directories built by the project's shared script (a verbatim copy of
// shared/fixtures/fstree-vectors.sh, so that a clean checkout has it); digests and bytes were produced by fstree.
const SCRIPT = resolve(import.meta.dirname, 'fixtures/fstree-vectors.sh');
const BASIC = 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9';
const IGNORE = 'blake3:99af46374945808eec71de1df182d48c065bce036b93627d75a7343b8e7bbe55';
const EMPTY_TREE = 'blake3:2c86712e4dea8735b1c6bd968b4d256d9ff42e24df47a4e52f8a3b04db647c16';
const DIR_ONE = 'blake3:28b2548acc940a96533c38aa181732ef1eb58c54d7db889538d74e24e9a2c5e1';
const DIR_ONE_HEX =
  'ee3e01000500000000000000c3bc6ec3af4700000000000000626c616b65333a' +
  '39303361306566663931383731653737363430393536303034646331303031313565343334326663363437336234323738313765313637346164306434376362' +
  'ed010002';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-tree-vectors-'));
  execFileSync('bash', [SCRIPT, tmp]);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('fstree test vectors', () => {
  it('OUT/basic has fstree root digest and children', async () => {
    const store = openStore(join(tmp, 'cache'));
    const root = await writeTree(join(tmp, 'basic'), { store, index: false });
    expect(root).toBe(BASIC);
    const entries = decodeTree(await store.get(root));
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
    expect(entries.map((e) => e.name)).toEqual([
      'dirlink',
      'empty.txt',
      'hello.txt',
      'link-to-hello',
      'run.sh',
      'sub',
    ]);
    expect(byName['hello.txt']).toEqual({
      name: 'hello.txt',
      digest: 'blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355',
      type: 'file',
      mode: 0o644,
    });
    expect(byName['empty.txt']?.digest).toBe(
      'blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
    );
    expect(byName['run.sh']).toMatchObject({
      digest: 'blake3:4b694fa6468140836e2f43625aca1150ec72032dc23a12e13416ca026c647ef3',
      mode: 0o755,
    });
    expect(byName.sub).toMatchObject({
      type: 'dir',
      digest: 'blake3:970bf575428226f125f77576c345916f86d488d6b5da1bb9992ce23368de5b1b',
    });
    expect(byName.dirlink).toEqual({
      name: 'dirlink',
      digest: '',
      type: 'symlink',
      mode: 0o777,
      target: 'sub/deeper',
    });
    expect(byName['link-to-hello']).toMatchObject({ type: 'symlink', target: 'hello.txt' });
    const sub = decodeTree(await store.get(byName.sub!.digest));
    expect(sub.find((e) => e.name === 'deeper')?.digest).toBe(
      'blake3:93fa53480c9ebdd9a481bde3f25379a1e3d43079df5d9fff7f5b1a89fc2e10ed',
    );
  });

  it('OUT/ignore has fstree root digest, empty trees, and the 100 bytes of "dir one"', async () => {
    const store = openStore(join(tmp, 'cache'));
    const root = await writeTree(join(tmp, 'ignore'), { store, index: false });
    expect(root).toBe(IGNORE);
    const entries = decodeTree(await store.get(root));
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
    expect(Object.keys(byName)).not.toContain('build');
    expect(byName.logs?.digest).toBe(EMPTY_TREE);
    expect(byName['empty-dir']?.digest).toBe(EMPTY_TREE);
    expect(byName['.fstreeignore']?.type).toBe('file');
    expect(byName['private.key']?.mode).toBe(0o600);
    expect(byName['dir one']?.digest).toBe(DIR_ONE);
    expect(Buffer.from(await store.get(DIR_ONE)).toString('hex')).toBe(DIR_ONE_HEX);
    expect(Buffer.from(await store.get(EMPTY_TREE)).toString('hex')).toBe('ee3e0100');
    expect(store.path(EMPTY_TREE, 'tree')).toMatch(/objects\/2c\/86712e.*\.tree$/);
  });

  it('gives the same digests with the index, hash-only, and without an index folder in the tree', async () => {
    const store = openStore(join(tmp, 'cache2'));
    expect(await writeTree(join(tmp, 'basic'), { store })).toBe(BASIC);
    expect(await readdir(join(tmp, 'basic', '.fstree'))).toEqual(['index']);
    // Second run: from the index, and `.fstree` is not part of the tree.
    expect(await writeTree(join(tmp, 'basic'), { store })).toBe(BASIC);
    expect(await hashTree(join(tmp, 'ignore'))).toBe(IGNORE);
    expect(await hashTree(join(tmp, 'basic'), { index: false })).toBe(BASIC);
  });
});
