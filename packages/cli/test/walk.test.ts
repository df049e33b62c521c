import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FSW_BIN, runFsw } from './run-fsw.js';

let root: string;

async function tree(spec: Record<string, string | { link: string }>): Promise<void> {
  for (const [rel, value] of Object.entries(spec)) {
    const path = join(root, rel);
    await mkdir(dirname(path), { recursive: true });
    if (typeof value === 'string') await writeFile(path, value);
    else await symlink(value.link, path);
  }
}

/** Runs fsw capturing raw stdout bytes; as an unprivileged user when asked (root ignores permission bits). */
function runRaw(
  args: string[],
  unprivileged = false,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const drop = unprivileged && process.getuid?.() === 0;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FSW_BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FSW_DEBUG: '' },
      cwd: '/',
      ...(drop ? { uid: 65534, gid: 65534 } : {}),
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

// Root ignores permission bits, so the permission test runs fsw as `nobody`; skipped only where that user cannot
// run the built fsw (e.g. a checkout under a private home directory).
const unprivileged = (await runRaw(['--version'], true)).code === 0;

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'fsw-cli-walk-')));
  await tree({
    'a.txt': 'aa',
    'src/main.ts': 'main',
    'src/lib/util.ts': 'u',
    'src/lib/skip.log': '',
    '.git/config': '',
    '.gitignore': '*.log\n',
    link: { link: 'a.txt' },
  });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('fsw walk', () => {
  it('prints one path per line, sorted with --sort', async () => {
    const r = await runFsw(['walk', root, '--sort']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual(
      [
        '.git',
        '.git/config',
        '.gitignore',
        'a.txt',
        'link',
        'src',
        'src/lib',
        'src/lib/skip.log',
        'src/lib/util.ts',
        'src/main.ts',
      ].map((p) => `${root}/${p}`),
    );
  });

  it('filters by type, glob, ignore, .gitignore, depth and hidden', async () => {
    const run = async (...args: string[]) => {
      const r = await runFsw(['walk', root, '--sort', ...args]);
      expect(r.code).toBe(0);
      return lines(r.stdout).map((p) => p.slice(root.length + 1));
    };
    expect(await run('--type', 'd')).toEqual(['.git', 'src', 'src/lib']);
    expect(await run('--type', 'l')).toEqual(['link']);
    expect(await run('--glob', '*.ts', '--glob', 'a.*')).toEqual(['a.txt', 'src/lib/util.ts', 'src/main.ts']);
    expect(await run('--ignore', 'lib/', '--ignore', '.git', '--type', 'f')).toEqual([
      '.gitignore',
      'a.txt',
      'src/main.ts',
    ]);
    expect(await run('--gitignore', '--no-hidden', '--type', 'f')).toEqual([
      'a.txt',
      'src/lib/util.ts',
      'src/main.ts',
    ]);
    expect(await run('--max-depth', '1')).toEqual(['.git', '.gitignore', 'a.txt', 'link', 'src']);
    expect(await run('--follow', '--type', 'f', '--glob', 'link')).toEqual(['link']);
  });

  it('separates paths with NUL under -0', async () => {
    await tree({ 'odd\nname.txt': 'x' });
    const r = await runRaw(['walk', root, '-0', '--glob', '*name*']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe(`${root}/odd\nname.txt\0`);
  });

  it('prints NDJSON entries with size and mtime under --json', async () => {
    const r = await runFsw(['walk', root, '--json', '--glob', 'a.txt']);
    expect(r.code).toBe(0);
    const records = lines(r.stdout).map((l) => JSON.parse(l));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      path: `${root}/a.txt`,
      relativePath: 'a.txt',
      type: 'file',
      depth: 1,
      size: 2,
    });
    expect(typeof records[0].mtimeMs).toBe('number');
  });

  it('prints the exact bytes of a name that is not UTF-8', async () => {
    const bad = Buffer.from([0x78, 0xff, 0x79]);
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), bad]), '');
    const r = await runRaw(['walk', root, '--glob', 'x*']);
    expect(r.code).toBe(0);
    expect(r.stdout).toEqual(Buffer.concat([Buffer.from(`${root}/`), bad, Buffer.from('\n')]));
    const json = await runFsw(['walk', root, '--json', '--glob', 'x*']);
    const record = JSON.parse(json.stdout);
    expect(Buffer.from(record.rawPathBase64, 'base64')).toEqual(
      Buffer.concat([Buffer.from(`${root}/`), bad]),
    );
  });

  it('warns about a missing root, still walks the others and exits 1', async () => {
    const r = await runFsw(['walk', join(root, 'missing'), join(root, 'src/lib'), '--sort']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`fsw: cannot walk ${root}/missing: no such file or directory (ENOENT)\n`);
    expect(lines(r.stdout)).toEqual([`${root}/src/lib/skip.log`, `${root}/src/lib/util.ts`]);
  });

  it.skipIf(!unprivileged)(
    'warns about an unreadable directory below the root, goes on, and exits 1',
    async () => {
      await tree({ 'locked/secret': '' });
      await chmod(root, 0o755);
      await chmod(join(root, 'locked'), 0o000);
      try {
        const r = await runRaw(['walk', root, '--sort'], true);
        expect(r.stderr).toBe(`fsw: cannot read directory ${root}/locked: permission denied (EACCES)\n`);
        expect(r.code).toBe(1);
        const out = lines(r.stdout.toString());
        expect(out).toContain(`${root}/locked`);
        expect(out).toContain(`${root}/src/main.ts`);
        expect(out).not.toContain(`${root}/locked/secret`);
      } finally {
        await chmod(join(root, 'locked'), 0o755);
      }
    },
  );

  it('follows symlinks with --follow, warning once about a loop and exiting 1', async () => {
    await tree({ 'src/lib/up': { link: '../..' } });
    const r = await runFsw(['walk', root, '--follow', '--sort', '--type', 'f']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `fsw: cannot follow ${root}/src/lib/up: it leads back to a directory being walked\n`,
    );
    expect(lines(r.stdout)).toContain(`${root}/link`);
    expect(lines(r.stdout)).toContain(`${root}/src/main.ts`);
  });

  it('rejects a bad --type or --max-depth with exit code 2', async () => {
    const r = await runFsw(['walk', root, '--type', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`fsw: invalid --type 'x' (expected f, d or l)\n`);
    expect((await runFsw(['walk', root, '--max-depth', 'deep'])).code).toBe(2);
  });

  it('ends quietly when the reader goes away (fsw walk | head)', async () => {
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) => writeFile(join(root, `file-${i}-${'x'.repeat(60)}`), '')),
    );
    const script = `${JSON.stringify(process.execPath)} ${JSON.stringify(FSW_BIN)} walk ${JSON.stringify(root)} | head -n 1 >/dev/null; echo "\${PIPESTATUS[0]}"`;
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('error', reject);
      child.on('close', () => resolve({ stdout, stderr }));
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('0\n');
  });

  it('writes large outputs completely', async () => {
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) => writeFile(join(root, `file-${i}-${'x'.repeat(60)}`), '')),
    );
    const r = await runFsw(['walk', root, '--max-depth', '1']);
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toHaveLength(3000 + 5);
  });
});
