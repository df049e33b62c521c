import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FSW_BIN, runFsw } from './run-fsw.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fsw-cli-hash-'));
  writeFileSync(join(dir, 'a.txt'), 'alpha\n');
  writeFileSync(join(dir, 'with space.bin'), Buffer.alloc(300_000, 7));
  writeFileSync(join(dir, 'empty'), '');
  mkdirSync(join(dir, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(dir, 'sub', 'b.txt'), 'bravo');
  writeFileSync(join(dir, 'sub', 'deeper', 'c.txt'), 'charlie');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a coreutils-style tool in `dir` and returns its stdout. */
function tool(
  cmd: string,
  args: readonly string[],
  input?: string,
): { stdout: string; status: number | null } {
  const res = spawnSync(cmd, args, { cwd: dir, input, encoding: 'utf8' });
  return { stdout: res.stdout, status: res.status };
}

describe('fsw hash', () => {
  it('prints b3sum-identical lines by default, and sha256sum -c accepts its --algo sha256 output', async () => {
    const files = ['a.txt', 'with space.bin', 'empty'];
    const b3 = await runFsw(['hash', ...files], { cwd: dir });
    expect(b3.code).toBe(0);
    expect(b3.stdout).toBe(execFileSync('b3sum', files, { cwd: dir, encoding: 'utf8' }));
    const sha = await runFsw(['hash', '--algo', 'sha256', ...files], { cwd: dir });
    expect(sha.stdout).toBe(execFileSync('sha256sum', files, { cwd: dir, encoding: 'utf8' }));
    const check = tool('sha256sum', ['-c'], sha.stdout);
    expect(check.status).toBe(0);
    expect(check.stdout).toBe('a.txt: OK\nwith space.bin: OK\nempty: OK\n');
  });

  it('matches sha1sum, md5sum and xxhsum for the other algorithms', async () => {
    const files = ['a.txt', 'with space.bin'];
    for (const [algo, cmd, flag] of [
      ['sha1', 'sha1sum', undefined],
      ['md5', 'md5sum', undefined],
      ['sha512', 'sha512sum', undefined],
      ['xxh128', 'xxhsum', '-H2'],
      ['xxh64', 'xxhsum', '-H1'],
    ] as const) {
      const ours = await runFsw(['hash', '-a', algo, ...files], { cwd: dir });
      expect(ours.stdout, algo).toBe(tool(cmd, [...(flag ? [flag] : []), ...files]).stdout);
    }
  });

  it('escapes names with a newline or backslash the way sha256sum does', async () => {
    const names = ['new\nline', 'back\\slash'];
    for (const n of names) writeFileSync(join(dir, n), n);
    const ours = await runFsw(['hash', '-a', 'sha256', ...names], { cwd: dir });
    expect(ours.stdout).toBe(tool('sha256sum', names).stdout);
    expect(tool('sha256sum', ['-c'], ours.stdout).status).toBe(0);
    const back = await runFsw(['hash', '-a', 'sha256', '--check', '-'], { cwd: dir, input: ours.stdout });
    expect(back.code).toBe(0);
    expect(back.stdout).toBe('\\new\\nline: OK\n\\back\\\\slash: OK\n');
  });

  it("hashes stdin for '-' or no path, in argument order among files", async () => {
    const alone = await runFsw(['hash'], { cwd: dir, input: 'alpha\n' });
    const digest = tool('b3sum', ['a.txt']).stdout.split(' ')[0];
    expect(alone.stdout).toBe(`${digest}  -\n`);
    const mixed = await runFsw(['hash', 'empty', '-', 'a.txt'], { cwd: dir, input: 'alpha\n' });
    const lines = mixed.stdout.trim().split('\n');
    expect(lines.map((l) => l.split('  ')[1])).toEqual(['empty', '-', 'a.txt']);
    expect(lines[1]).toBe(`${digest}  -`);
  });

  it('-r hashes every file under a directory, in sorted order, as b3sum would', async () => {
    const res = await runFsw(['hash', '-r', 'sub', 'a.txt'], { cwd: dir });
    expect(res.code).toBe(0);
    const want = ['sub/b.txt', 'sub/deeper/c.txt', 'a.txt'];
    expect(res.stdout).toBe(tool('b3sum', want).stdout);
  });

  it('-r keeps argument order across directories, files, stdin and failures', async () => {
    const res = await runFsw(['hash', '-r', 'a.txt', 'sub', '-', 'missing', 'sub/deeper', 'empty'], {
      cwd: dir,
      input: 'alpha\n',
    });
    expect(res.code).toBe(1);
    const digest = tool('b3sum', ['a.txt']).stdout.split(' ')[0];
    const files = ['a.txt', 'sub/b.txt', 'sub/deeper/c.txt'];
    const tail = ['sub/deeper/c.txt', 'empty'];
    expect(res.stdout).toBe(`${tool('b3sum', files).stdout}${digest}  -\n${tool('b3sum', tail).stdout}`);
    expect(res.stderr).toContain('cannot open missing');
  });

  it('-r reports a directory it cannot read, names with invalid UTF-8, and hashes the rest', async () => {
    const top = join(dir, 'top');
    mkdirSync(join(top, 'locked'), { recursive: true });
    mkdirSync(join(top, 'open'));
    writeFileSync(join(top, 'a'), 'a');
    writeFileSync(join(top, 'locked', 'b'), 'b');
    writeFileSync(join(top, 'open', 'c'), 'c');
    writeFileSync(join(top, 'bad-'), '');
    // The same name followed by a byte that is not UTF-8: reported and skipped, never hashed under a lossy name.
    writeFileSync(Buffer.concat([Buffer.from(join(top, 'bad-')), Buffer.from([0xff])]), 'x');
    chmodSync(join(top, 'locked'), 0o000);
    for (const d of [dir, top]) chmodSync(d, 0o755);
    // Root reads any directory: then the command runs as `nobody`, which the mode keeps out.
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const res = spawnSync(process.execPath, [FSW_BIN, 'hash', '-r', 'top'], {
      cwd: dir,
      encoding: 'utf8',
      ...asNobody,
    });
    chmodSync(join(top, 'locked'), 0o755);
    expect(res.status).toBe(1);
    expect(res.stdout).toBe(tool('b3sum', ['top/a', 'top/bad-', 'top/open/c']).stdout);
    expect(res.stderr).toContain('fsw: cannot read directory top/locked: permission denied (EACCES)');
    expect(res.stderr).toContain('its name is not valid UTF-8');
  });

  it('reports unreadable paths on stderr, hashes the rest, and exits 1', async () => {
    const res = await runFsw(['hash', 'missing', 'a.txt', 'sub'], { cwd: dir });
    expect(res.code).toBe(1);
    expect(res.stdout).toBe(tool('b3sum', ['a.txt']).stdout);
    expect(res.stderr).toContain('fsw: cannot open missing: no such file or directory (ENOENT)');
    expect(res.stderr).toContain('fsw: cannot hash sub: is a directory');
  });

  it('stops quietly when the reader closes the pipe early', () => {
    const many = join(dir, 'many');
    mkdirSync(many);
    for (let i = 0; i < 1500; i++) writeFileSync(join(many, `file-with-a-longish-name-${i}.txt`), String(i));
    const res = spawnSync('bash', ['-c', `"${process.execPath}" "${FSW_BIN}" hash -r many | head -n 1`], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.status).toBe(0);
    expect(res.stdout.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toBe('');
  });

  it('--json prints one record per file', async () => {
    const res = await runFsw(['hash', '--json', '-a', 'xxh3', 'a.txt'], { cwd: dir });
    const record = JSON.parse(res.stdout) as Record<string, unknown>;
    expect(record).toMatchObject({ path: 'a.txt', algorithm: 'xxh3', size: 6, engine: 'hash-wasm' });
    expect(record.digest).toBe(/= ([0-9a-f]+)/.exec(tool('xxhsum', ['-H3', 'a.txt']).stdout)![1]);
  });

  it('rejects an unknown algorithm as a usage error', async () => {
    const res = await runFsw(['hash', '-a', 'sha3', 'a.txt'], { cwd: dir });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('unknown algorithm');
  });
});

describe('fsw hash --check', () => {
  it('verifies a sha256sum list: OK lines and exit 0; a changed file: FAILED and exit 1', async () => {
    const list = join(dir, 'SUMS');
    writeFileSync(list, tool('sha256sum', ['a.txt', 'sub/b.txt']).stdout);
    const ok = await runFsw(['hash', '-a', 'sha256', '--check', list], { cwd: dir });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('a.txt: OK\nsub/b.txt: OK\n');
    writeFileSync(join(dir, 'sub', 'b.txt'), 'BRAVO');
    const bad = await runFsw(['hash', '-a', 'sha256', '-c', list], { cwd: dir });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('a.txt: OK\nsub/b.txt: FAILED\n');
    expect(bad.stderr).toContain('WARNING: 1 computed checksum did NOT match');
  });

  it('verifies its own blake3 output, reports missing files, and reads BSD tags', async () => {
    const sums = (await runFsw(['hash', 'a.txt', 'empty'], { cwd: dir })).stdout;
    rmSync(join(dir, 'empty'));
    const res = await runFsw(['hash', '--check', '-'], { cwd: dir, input: sums });
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('a.txt: OK\nempty: FAILED open or read\n');
    expect(res.stderr).toContain('no such file or directory');
    const tagged = tool('sha256sum', ['--tag', 'a.txt']).stdout;
    const viaTag = await runFsw(['hash', '--check', '-'], { cwd: dir, input: tagged });
    expect(viaTag.code).toBe(0);
    expect(viaTag.stdout).toBe('a.txt: OK\n');
  });

  it('fails on a list without any checksum line', async () => {
    const res = await runFsw(['hash', '--check', '-'], { cwd: dir, input: 'nothing here\n' });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('no properly formatted checksum lines found');
  });
});
