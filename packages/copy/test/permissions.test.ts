import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listAll, makeTree, tempDir } from './helpers.js';

// Permission errors need a user the kernel checks: as root, each case runs in a child process as `nobody`.
const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const canDrop =
  process.getuid?.() === 0 && spawnSync('setpriv', [...asNobody, 'true'], { stdio: 'ignore' }).status === 0;
const library = fileURLToPath(new URL('../dist/index.js', import.meta.url));

interface Outcome {
  readonly ok: boolean;
  readonly code?: string;
  readonly path?: string;
  readonly message?: string;
}

/** Runs `copy` or `move` of `src` to `dest` as nobody; resolves with the CopyError's fields (or ok). */
function runAsNobody(verb: 'copy' | 'move', src: string, dest: string): Outcome {
  const script = `
    const lib = await import(${JSON.stringify(library)});
    const [verb, src, dest] = process.argv.slice(1);
    try {
      await lib[verb](src, dest);
      console.log(JSON.stringify({ ok: true }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, code: e.code, path: e.path, message: e.message }));
    }`;
  const r = spawnSync(
    'setpriv',
    [...asNobody, process.execPath, '--input-type=module', '-e', script, verb, src, dest],
    {
      encoding: 'utf8',
    },
  );
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as Outcome;
}

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  await chmod(dir, 0o755);
});
afterEach(async () => {
  await cleanup();
});

describe.skipIf(!canDrop)('permission denied names the side that refused (run as nobody)', () => {
  for (const [what, size] of [
    ['small file', 2],
    ['large file', 8 * 1024 * 1024],
  ] as const) {
    it(`copy of a ${what} into an unwritable directory names the destination`, async () => {
      await writeFile(join(dir, 'file'), Buffer.alloc(size, 1));
      await mkdir(join(dir, 'rodest'), { mode: 0o555 });
      await chmod(join(dir, 'rodest'), 0o555);
      const r = runAsNobody('copy', join(dir, 'file'), `${join(dir, 'rodest')}/`);
      expect(r).toMatchObject({
        ok: false,
        code: 'E_PERMISSION',
        path: join(dir, 'rodest/file'),
        message: `cannot copy ${join(dir, 'file')} to ${join(dir, 'rodest/file')}: permission denied (EACCES)`,
      });
      expect(await listAll(join(dir, 'rodest'))).toEqual([]);
    });

    it(`copy of an unreadable ${what} into a writable directory names the source`, async () => {
      await writeFile(join(dir, 'file'), Buffer.alloc(size, 1), { mode: 0o200 });
      await chmod(join(dir, 'file'), 0o200);
      await mkdir(join(dir, 'out'));
      await chmod(join(dir, 'out'), 0o777);
      const r = runAsNobody('copy', join(dir, 'file'), `${join(dir, 'out')}/`);
      expect(r).toMatchObject({
        ok: false,
        code: 'E_PERMISSION',
        path: join(dir, 'file'),
        message: `cannot copy ${join(dir, 'file')}: permission denied (EACCES)`,
      });
      expect(await listAll(join(dir, 'out'))).toEqual([]);
    });
  }

  it('a move (rename) into an unwritable directory names the destination', async () => {
    await mkdir(join(dir, 'src'));
    await chmod(join(dir, 'src'), 0o777);
    await writeFile(join(dir, 'src/f'), 'x');
    await mkdir(join(dir, 'rodest'));
    await chmod(join(dir, 'rodest'), 0o555);
    const r = runAsNobody('move', join(dir, 'src/f'), `${join(dir, 'rodest')}/`);
    expect(r).toMatchObject({ ok: false, code: 'E_PERMISSION', path: join(dir, 'rodest/f') });
    expect(await listAll(join(dir, 'src'))).toEqual(['f']);
  });

  it('a move (rename) out of an unwritable directory names the source', async () => {
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src/f'), 'x');
    await chmod(join(dir, 'src'), 0o555);
    await mkdir(join(dir, 'out'));
    await chmod(join(dir, 'out'), 0o777);
    const r = runAsNobody('move', join(dir, 'src/f'), `${join(dir, 'out')}/`);
    expect(r).toMatchObject({
      ok: false,
      code: 'E_PERMISSION',
      path: join(dir, 'src/f'),
      message: `cannot move ${join(dir, 'src/f')}: permission denied (EACCES)`,
    });
    expect(await listAll(join(dir, 'out'))).toEqual([]);
  });
});

describe.skipIf(!canDrop)('move of a whole directory (one rename) refused (run as nobody)', () => {
  it('into an unwritable directory names the destination', async () => {
    await makeTree(join(dir, 'parent'), { 'd/a': 'a' });
    await chmod(join(dir, 'parent'), 0o777);
    await chmod(join(dir, 'parent/d'), 0o777);
    await mkdir(join(dir, 'rodest'));
    await chmod(join(dir, 'rodest'), 0o555);
    const r = runAsNobody('move', join(dir, 'parent/d'), `${join(dir, 'rodest')}/`);
    expect(r).toMatchObject({
      ok: false,
      code: 'E_PERMISSION',
      path: join(dir, 'rodest/d'),
      message: `cannot move ${join(dir, 'parent/d')} to ${join(dir, 'rodest/d')}: permission denied (EACCES)`,
    });
    expect(await listAll(join(dir, 'parent'))).toEqual(['d', 'd/a']);
  });

  it('that is itself unwritable (its .. cannot change) names the source', async () => {
    await makeTree(join(dir, 'parent'), { 'd/a': 'a' });
    await chmod(join(dir, 'parent'), 0o777);
    await chmod(join(dir, 'parent/d'), 0o555);
    await mkdir(join(dir, 'out'));
    await chmod(join(dir, 'out'), 0o777);
    const r = runAsNobody('move', join(dir, 'parent/d'), `${join(dir, 'out')}/`);
    expect(r).toMatchObject({ ok: false, code: 'E_PERMISSION', path: join(dir, 'parent/d') });
    expect(await listAll(join(dir, 'out'))).toEqual([]);
  });
});

/** A folder for nobody on another filesystem than the temp dir (so a move copies), or undefined. */
async function otherFilesystem(): Promise<string | undefined> {
  try {
    if ((await stat('/dev/shm')).dev === (await stat(dir)).dev) return undefined;
    const other = await mkdtemp('/dev/shm/fsw-copy-');
    await chmod(other, 0o777);
    return other;
  } catch {
    return undefined;
  }
}

describe.skipIf(!canDrop)('move across filesystems whose source cannot be removed (run as nobody)', () => {
  it('names the source and says the copy is in place; both are kept', async (ctx) => {
    const other = await otherFilesystem();
    if (other === undefined) return ctx.skip();
    try {
      await mkdir(join(dir, 'src'));
      await writeFile(join(dir, 'src/f'), 'data');
      await chmod(join(dir, 'src'), 0o555);
      const r = runAsNobody('move', join(dir, 'src/f'), `${other}/`);
      expect(r).toMatchObject({
        ok: false,
        code: 'E_PERMISSION',
        path: join(dir, 'src/f'),
        message: `copied to ${join(other, 'f')}, but cannot remove the source ${join(dir, 'src/f')}: permission denied (EACCES); the file is now in both places`,
      });
      expect(await readFile(join(other, 'f'), 'utf8')).toBe('data');
      expect(await readFile(join(dir, 'src/f'), 'utf8')).toBe('data');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
