import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeTree, encodeTree, type Store, type TreeEntry } from '@fsw/tree';

/** A directory described in memory: a string is a file's content, an object a sub-directory, `{ link }` a symlink. */
export interface Spec {
  readonly [name: string]: string | Uint8Array | Spec | { readonly link: string };
}

function isLink(v: unknown): v is { link: string } {
  return (
    typeof v === 'object' && v !== null && 'link' in v && typeof (v as { link: unknown }).link === 'string'
  );
}

/** Writes `spec` into `store` as fstree objects and returns the root tree's digest. */
export async function putSpec(store: Store, spec: Spec): Promise<string> {
  const entries: TreeEntry[] = [];
  for (const [name, value] of Object.entries(spec)) {
    if (typeof value === 'string' || value instanceof Uint8Array) {
      const bytes = typeof value === 'string' ? Buffer.from(value) : value;
      entries.push({ name, type: 'file', mode: 0o644, digest: await store.put(bytes, 'file') });
    } else if (isLink(value)) {
      entries.push({ name, type: 'symlink', mode: 0o777, digest: '', target: value.link });
    } else {
      entries.push({ name, type: 'dir', mode: 0o755, digest: await putSpec(store, value as Spec) });
    }
  }
  return store.put(encodeTree(entries), 'tree');
}

/** Every object digest reachable from `root` (trees and files), read from `store`. */
export async function reachable(store: Store, root: string): Promise<{ trees: string[]; files: string[] }> {
  const trees = new Set<string>();
  const files = new Set<string>();
  const visit = async (d: string) => {
    if (trees.has(d)) return;
    trees.add(d);
    for (const e of decodeTree(await store.get(d))) {
      if (e.type === 'dir') await visit(e.digest);
      else if (e.type === 'file') files.add(e.digest);
    }
  };
  await visit(root);
  return { trees: [...trees], files: [...files] };
}

/** A seeded, varied tree: nested dirs, shared subtrees, duplicate and empty files, symlinks, one 9 MiB file. */
export function sampleSpec(seed = 1, withBig = false, dirs = 6): Spec {
  let x = seed;
  const rand = () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x;
  };
  const shared: Spec = { 'same.txt': 'shared content\n', deep: { 'leaf.txt': 'leaf\n' } };
  const spec: Record<string, Spec[string]> = {
    'empty.txt': '',
    'hello.txt': 'hello world\n',
    'dup-a.txt': 'duplicate\n',
    'dup-b.txt': 'duplicate\n',
    link: { link: 'hello.txt' },
    'empty-dir': {},
    a: shared,
    b: { nested: shared, 'x.bin': Buffer.alloc(200_000, 7) },
  };
  for (let d = 0; d < dirs; d++) {
    const dir: Record<string, string> = {};
    for (let f = 0; f < 12; f++)
      dir[`f${f}.txt`] = `dir ${d} file ${f} ${rand()}\n`.repeat(1 + (rand() % 50));
    spec[`d${d}`] = dir;
  }
  if (withBig) {
    const big = Buffer.alloc(9 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(rand(), i);
    spec['big.bin'] = big;
  }
  return spec;
}

/** A fresh temp dir, removed by the returned function. */
export async function tempDir(
  prefix = 'fsw-remote-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
