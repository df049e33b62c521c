import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A fresh temp dir, removed by the returned cleanup. */
export async function tempDir(prefix = 'fsw-copy-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes files given as relative path -> content (string or byte count of seeded bytes). */
export async function makeTree(root: string, files: Record<string, string | number>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, typeof content === 'string' ? content : bytes(content, rel.length));
  }
}

/** `size` deterministic pseudo-random bytes. */
export function bytes(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = x >>> 24;
  }
  return buf;
}

/** Every path below `root` (files, dirs, symlinks), relative and sorted. */
export async function listAll(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true });
  return entries.map(String).sort();
}

/** The temp files our copies leave behind, if any (there must be none). */
export async function tempFiles(root: string): Promise<string[]> {
  return (await listAll(root)).filter((p) => /(^|\/)\.fsw-[0-9a-f]+-[0-9a-z]+\.tmp$/.test(p));
}

/** The content of every file below root, as relative path -> sha256 (vitest's deep equality is slow on big buffers). */
export async function readTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) {
      const path = join(e.parentPath, e.name);
      out.set(path.slice(root.length + 1), await digest(path));
    }
  }
  return out;
}

/** The sha256 of a file's content, hex. */
export async function digest(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}
