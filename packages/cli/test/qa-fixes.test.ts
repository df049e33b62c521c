import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
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
