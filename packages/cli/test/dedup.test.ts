import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FSW_BIN, runFsw } from './run-fsw.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fsw-cli-dedup-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function put(rel: string, data: Uint8Array | string): string {
  const path = join(dir, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return path;
}

/** Two groups: three 20 KB copies (a, b/c, d) and two 3 KB copies (x, y), plus a near-duplicate and an empty pair. */
function tree() {
  const big = randomBytes(20_000);
  const small = randomBytes(3000);
  const near = Buffer.from(big);
  near[10_000] = (near[10_000]! + 1) & 0xff;
  return {
    big: [put('a', big), put('b/c', big), put('d', big)],
    small: [put('x', small), put('y', small)],
    near: put('near', near),
    empty: [put('e1', ''), put('e2', '')],
  };
}

describe('fsw dedup', () => {
  it('prints groups as jdupes does, then a summary on stderr', async () => {
    const t = tree();
    const res = await runFsw(['dedup', dir]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`${t.big.join('\n')}\n\n${t.small.join('\n')}\n\n`);
    expect(res.stderr).toContain('2 groups of duplicates, 3 duplicate files, 42.0 KiB wasted');
    const paranoid = await runFsw(['dedup', '--paranoid', dir]);
    expect(paranoid.stdout).toBe(res.stdout);
  });

  it('prints the exact bytes of a name that is not valid UTF-8, and base64 of them in --json', async () => {
    const data = randomBytes(9000);
    const rawName = Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe9])]);
    writeFileSync(rawName, data);
    const copy = put('copy', data);
    const text = spawnSync(process.execPath, [FSW_BIN, 'dedup', dir], {
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(text.status).toBe(0);
    expect(text.stdout).toEqual(Buffer.concat([rawName, Buffer.from(`\n${copy}\n\n`)]));
    const json = await runFsw(['dedup', '--json', dir]);
    const group = JSON.parse(json.stdout.split('\n')[0]!);
    expect(group.paths).toEqual([join(dir, 'caf\uFFFD'), copy]);
    expect(group.rawPathsBase64).toEqual([rawName.toString('base64'), null]);
  });

  it('--link acts on a name that is not valid UTF-8 through its bytes, not another file of the same lossy form', async () => {
    const data = randomBytes(9000);
    const rawName = Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe9])]);
    // Another file whose name has the same lossy form, not a copy.
    const other = Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe8])]);
    const otherData = randomBytes(9000);
    writeFileSync(rawName, data);
    writeFileSync(other, otherData);
    const copy = put('copy', data);
    utimesSync(copy, new Date(), new Date(Date.now() + 60_000));
    const otherIno = statSync(other).ino;
    const res = await runFsw(['dedup', '--json', '--link=sym', '--keep=newest', dir]);
    expect(res.code).toBe(0);
    const records = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.find((r) => r.type === 'done')).toEqual({
      type: 'done',
      path: join(dir, 'caf\uFFFD'),
      rawPathBase64: rawName.toString('base64'),
      action: 'symlink',
      keptPath: copy,
      dryRun: false,
    });
    expect(readlinkSync(rawName, { encoding: 'buffer' })).toEqual(Buffer.from('copy'));
    expect(readFileSync(rawName)).toEqual(data);
    expect(statSync(other).ino).toBe(otherIno);
    expect(readFileSync(other)).toEqual(otherData);
  });

  it('--summary prints only the summary; --min-size filters', async () => {
    tree();
    const res = await runFsw(['dedup', '--summary', '--min-size', '4k', dir]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^1 group of duplicates, 2 duplicate files, 39\.1 KiB wasted/);
  });

  it('--json prints one record per group and a summary record', async () => {
    const t = tree();
    const res = await runFsw(['dedup', '--json', '--algo', 'sha256', dir]);
    expect(res.code).toBe(0);
    const records = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records[0]).toMatchObject({ type: 'group', size: 20_000, wastedBytes: 40_000, paths: t.big });
    expect(records[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(records[2]).toMatchObject({ type: 'summary', groups: 2, duplicateFiles: 3, wastedBytes: 43_000 });
  });

  it('--link=hard replaces copies by hard links; --dry-run changes nothing', async () => {
    const t = tree();
    const dry = await runFsw(['dedup', '--link=hard', '--dry-run', dir]);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toContain(`would be hard-linked: ${t.big[1]} (kept ${t.big[0]})`);
    expect(statSync(t.big[1]!).ino).not.toBe(statSync(t.big[0]!).ino);
    const res = await runFsw(['dedup', '--link=hard', dir]);
    expect(res.code).toBe(0);
    expect(res.stderr).toContain('freed 42.0 KiB: 3 paths replaced, 0 skipped');
    expect(statSync(t.big[1]!).ino).toBe(statSync(t.big[0]!).ino);
    expect(statSync(t.small[1]!).ino).toBe(statSync(t.small[0]!).ino);
    // Hard links are one file: nothing left to report.
    const again = await runFsw(['dedup', dir]);
    expect(again.stdout).toBe('');
  });

  it('--delete --keep=shortest-path keeps one copy of each group', async () => {
    const t = tree();
    const bytes = readFileSync(t.big[0]!);
    const res = await runFsw(['dedup', '--delete', '--keep=shortest-path', dir]);
    expect(res.code).toBe(0);
    expect(() => statSync(t.big[1]!)).toThrow();
    expect(readFileSync(t.big[0]!).equals(bytes)).toBe(true);
    expect(statSync(t.near).size).toBe(20_000);
  });

  it('--cache: a second run gives the same output and reads nothing', async () => {
    tree();
    const env = { XDG_CACHE_HOME: join(dir, '..', `${dir.split('/').pop()}-xdg`) };
    try {
      const first = await runFsw(['dedup', '--cache', '--json', dir], { env });
      const second = await runFsw(['dedup', '--cache', '--json', dir], { env });
      expect(second.stdout.split('\n').slice(0, 2)).toEqual(first.stdout.split('\n').slice(0, 2));
      expect(second.stdout).toContain('"bytesRead":0');
      expect(statSync(join(env.XDG_CACHE_HOME, 'fsw', 'dedup-cache.bin')).size).toBeGreaterThan(0);
    } finally {
      rmSync(env.XDG_CACHE_HOME, { recursive: true, force: true });
    }
  });

  it('usage errors exit 2; a missing path exits 1 with one line', async () => {
    expect((await runFsw(['dedup', '--link=hard', '--delete', dir])).code).toBe(2);
    expect((await runFsw(['dedup', '--dry-run', dir])).code).toBe(2);
    expect((await runFsw(['dedup', '--algo', 'nope', dir])).code).toBe(2);
    expect((await runFsw(['dedup', '--link=weird', dir])).code).toBe(2);
    const missing = await runFsw(['dedup', join(dir, 'missing')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^fsw: cannot .*missing.*\n$/);
  });
});
