import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = join(here, '..', '..', '..');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fsw-hash-bundle-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The package each bundled input comes from: `@fsw/<name>` for workspace packages, else the npm package name. */
function owners(meta: Metafile): Set<string> {
  const out = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    if (input === '<stdin>') continue;
    const rel = relative(repo, join(repo, input)).split(sep).join('/');
    const nm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(rel);
    const ws = /^packages\/([^/]+)\//.exec(rel);
    out.add(nm !== null ? nm[1]! : ws !== null ? `@fsw/${ws[1]}` : rel);
  }
  return out;
}

async function bundle(contents: string, platform: 'node' | 'browser') {
  const result = await build({
    stdin: { contents, resolveDir: here, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform,
    minify: true,
    write: false,
    metafile: true,
    absWorkingDir: repo,
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0]!.text, meta: result.metafile };
}

describe('bundling @fsw/hash', () => {
  it('`import { hashFile }` for Node pulls in no other @fsw package nor their dependencies, and still runs', async () => {
    const { code, meta } = await bundle(`export { hashFile } from '@fsw/hash';`, 'node');
    expect([...owners(meta)].sort()).toEqual(['@fsw/errors', '@fsw/hash', 'hash-wasm']);
    for (const other of ['walk', 'copy', 'dedup', 'watch', 'tree', 'remote', 'server', 'cli']) {
      expect(code).not.toContain(`@fsw/${other}`);
    }
    const out = join(dir, 'bundle.mjs');
    const file = join(dir, 'abc.txt');
    writeFileSync(out, code);
    writeFileSync(file, 'abc');
    const { hashFile } = (await import(pathToFileURL(out).href)) as typeof import('@fsw/hash');
    const r = await hashFile(file, { algorithm: 'sha256' });
    expect(r.digest).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('`@fsw/hash/algorithms` is the algorithm list alone: no hasher, pool or reader comes with it', async () => {
    const { code, meta } = await bundle(
      `export { ALGORITHMS, isHashAlgorithm } from '@fsw/hash/algorithms';`,
      'node',
    );
    expect([...owners(meta)].sort()).toEqual(['@fsw/errors', '@fsw/hash']);
    const fromHash = Object.keys(meta.inputs)
      .filter((input) => input.includes('packages/hash/'))
      .map((input) => input.slice(input.indexOf('packages/hash/')));
    expect(fromHash).toEqual(['packages/hash/dist/algorithms.js']);
    const out = join(dir, 'algorithms.mjs');
    writeFileSync(out, code);
    const mod = (await import(pathToFileURL(out).href)) as typeof import('@fsw/hash/algorithms');
    expect(mod.ALGORITHMS).toContain('blake3');
    expect(mod.isHashAlgorithm('crc32')).toBe(true);
    expect(mod.isHashAlgorithm('crc33')).toBe(false);
  });

  it('a Node bundle without the worker script still hashes batches, on the calling thread', async () => {
    const { code } = await bundle(`export { hashFiles } from '@fsw/hash';`, 'node');
    const out = join(dir, 'batch.mjs');
    writeFileSync(out, code);
    const files = ['a', 'b', 'c', 'd'].map((n) => {
      const p = join(dir, n);
      writeFileSync(p, n.repeat(1000));
      return p;
    });
    const { hashFiles } = (await import(pathToFileURL(out).href)) as typeof import('@fsw/hash');
    const res = await hashFiles(files, { algorithm: 'sha256', concurrency: 2 });
    const { createHash } = await import('node:crypto');
    expect(res.map((r) => r.digest)).toEqual(
      ['a', 'b', 'c', 'd'].map((n) => createHash('sha256').update(n.repeat(1000)).digest('hex')),
    );
  });

  it('`import { hashBytes }` for browsers takes the browser entry: hash-wasm only, no node: built-ins', async () => {
    const { code, meta } = await bundle(`export { hashBytes } from '@fsw/hash';`, 'browser');
    expect([...owners(meta)].sort()).toEqual(['@fsw/errors', '@fsw/hash', 'hash-wasm']);
    expect(Object.keys(meta.inputs).some((i) => i.endsWith('packages/hash/dist/browser.js'))).toBe(true);
    expect(Object.keys(meta.inputs).some((i) => i.endsWith('packages/hash/dist/index.js'))).toBe(false);
    expect(code).not.toMatch(/["']node:/);
  });
});
