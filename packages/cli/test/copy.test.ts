import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runFsw } from './run-fsw.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-cli-copy-'));
  await mkdir(join(dir, 'src/sub'), { recursive: true });
  await writeFile(join(dir, 'src/a.txt'), 'alpha');
  await writeFile(join(dir, 'src/sub/b.bin'), Buffer.alloc(5000, 7));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function list(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

describe('fsw copy', () => {
  it('copies a directory like cp -r and prints a summary', async () => {
    const r = await runFsw(['copy', 'src', 'out'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^copied 2 files \(4\.89 KiB\) in [\d.]+s/);
    expect(await list(join(dir, 'out'))).toEqual(['a.txt', 'sub', 'sub/b.bin']);
    // A second copy goes inside the now existing directory.
    expect((await runFsw(['copy', 'src', 'out'], { cwd: dir })).code).toBe(0);
    expect(await readFile(join(dir, 'out/src/a.txt'), 'utf8')).toBe('alpha');
  });

  it('refuses existing files by default (exit 1, naming each) but copies the rest', async () => {
    await mkdir(join(dir, 'out/sub'), { recursive: true });
    await writeFile(join(dir, 'out/a.txt'), 'mine');
    const r = await runFsw(['copy', 'src/.', 'out'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `fsw: cannot copy ${join(dir, 'src/a.txt')}: destination ${join(dir, 'out/a.txt')} already exists`,
    );
    expect(await readFile(join(dir, 'out/a.txt'), 'utf8')).toBe('mine');
    expect((await stat(join(dir, 'out/sub/b.bin'))).size).toBe(5000);
  });

  it('a destination ending in / must be a directory, as for cp', async () => {
    const r = await runFsw(['copy', 'src/a.txt', 'nodir/'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nodir/');
    expect(r.stderr).toContain('no such directory');
    expect(await list(dir)).not.toContain('nodir');
  });

  it('--skip-existing, --update and --overwrite decide conflicts', async () => {
    await mkdir(join(dir, 'out'));
    await writeFile(join(dir, 'out/a.txt'), 'mine');
    const future = new Date(Date.now() + 3_600_000);
    await utimes(join(dir, 'out/a.txt'), future, future);
    expect((await runFsw(['copy', '-n', 'src/.', 'out'], { cwd: dir })).code).toBe(0);
    expect(await readFile(join(dir, 'out/a.txt'), 'utf8')).toBe('mine');
    expect((await runFsw(['copy', '--update', 'src/a.txt', 'out'], { cwd: dir })).stdout).toMatch(
      /1 skipped/,
    );
    expect(await readFile(join(dir, 'out/a.txt'), 'utf8')).toBe('mine');
    expect((await runFsw(['copy', '--overwrite', 'src/a.txt', 'out'], { cwd: dir })).code).toBe(0);
    expect(await readFile(join(dir, 'out/a.txt'), 'utf8')).toBe('alpha');
  });

  it('--json prints NDJSON progress records and a result', async () => {
    const r = await runFsw(['copy', '--json', 'src', 'out'], { cwd: dir });
    expect(r.code).toBe(0);
    const records = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
    expect(records.at(-1)).toMatchObject({
      type: 'result',
      ok: true,
      files: 2,
      bytes: 5005,
      skipped: 0,
      errors: 0,
    });
    const progress = records.filter((x) => x.type === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.at(-1)).toMatchObject({
      bytesCopied: 5005,
      totalBytes: 5005,
      filesCompleted: 2,
      totalFiles: 2,
    });
  });

  it('--dry-run writes nothing', async () => {
    const r = await runFsw(['copy', '--dry-run', 'src', 'out'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^would copy 2 files/);
    expect(await list(dir)).toEqual(['src', 'src/a.txt', 'src/sub', 'src/sub/b.bin']);
  });

  it('--no-preserve gives the umask mode; the default keeps the mode', async () => {
    await chmod(join(dir, 'src/a.txt'), 0o700);
    expect((await runFsw(['copy', 'src/a.txt', 'kept.txt'], { cwd: dir })).code).toBe(0);
    expect((await stat(join(dir, 'kept.txt'))).mode & 0o777).toBe(0o700);
    expect((await runFsw(['copy', '--no-preserve', 'src/a.txt', 'plain.txt'], { cwd: dir })).code).toBe(0);
    expect((await stat(join(dir, 'plain.txt'))).mode & 0o777).toBe(0o700 & ~process.umask());
  });

  it('a missing source fails with exit 1 and one line; bad usage exits 2', async () => {
    const r = await runFsw(['copy', 'nope', 'out'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`fsw: cannot copy ${join(dir, 'nope')}: no such file or directory (ENOENT)\n`);
    expect((await runFsw(['copy', 'src'], { cwd: dir })).code).toBe(2);
    expect((await runFsw(['copy', '-n', '-f', 'src', 'x'], { cwd: dir })).code).toBe(2);
    expect((await runFsw(['copy', '--reflink=sometimes', 'src', 'x'], { cwd: dir })).code).toBe(2);
    expect((await runFsw(['copy', '--reflink=never', 'src', 'x'], { cwd: dir })).code).toBe(0);
  });

  it('refuses to copy a directory into itself', async () => {
    const r = await runFsw(['copy', 'src', 'src/sub'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fsw: cannot copy directory .* into itself/);
  });
});

describe('fsw move', () => {
  it('moves sources into a directory and removes them', async () => {
    await mkdir(join(dir, 'dest'));
    const r = await runFsw(['move', 'src/a.txt', 'src/sub', 'dest'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^moved 2 files/);
    expect(await list(join(dir, 'dest'))).toEqual(['a.txt', 'sub', 'sub/b.bin']);
    expect(await list(join(dir, 'src'))).toEqual([]);
  });

  it('moves across filesystems with --verify=content', async () => {
    const shm = await mkdtemp('/dev/shm/fsw-cli-copy-').catch(() => undefined);
    // Needs /dev/shm (tmpfs), another filesystem than the temp dir.
    if (shm === undefined || (await stat(shm)).dev === (await stat(dir)).dev) return;
    try {
      const r = await runFsw(['move', '--verify', 'content', 'src', shm], { cwd: dir });
      expect(r.code).toBe(0);
      expect(await list(join(shm, 'src'))).toEqual(['a.txt', 'sub', 'sub/b.bin']);
      await expect(stat(join(dir, 'src'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});
