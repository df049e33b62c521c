import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FSW_BIN, runFsw } from './run-fsw.js';

let dir: string;
let env: NodeJS.ProcessEnv;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-cli-checkout-signals-'));
  env = { FSTREE_CACHE: join(dir, 'cache'), FSTREE_IGNORE: '', FSTREE_THREADS: '' };
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fsw checkout stopped by signals', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    '%s while files are written: no temp file left, exit %i, the rerun finishes without --force',
    async (signal, exitCode) => {
      const src = join(dir, 'src');
      for (let d = 0; d < 60; d++) {
        mkdirSync(join(src, `d${d}`), { recursive: true });
        for (let i = 0; i < 50; i++) writeFileSync(join(src, `d${d}`, `f${i}`), 'x'.repeat((d * i) % 3000));
      }
      const digest = (await runFsw(['write-tree', '-q', src], { env })).stdout.trim();
      const out = join(dir, 'out');
      const child = spawn(process.execPath, [FSW_BIN, 'checkout', '-q', digest, out], {
        env: { ...process.env, FSW_DEBUG: '', NO_COLOR: '1', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString('utf8');
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, sig) => resolve({ code, signal: sig })),
      );
      // The folder is made when the plan is done and writing starts.
      let started = false;
      const deadline = Date.now() + 20_000;
      while (!started && child.exitCode === null && Date.now() < deadline) {
        started = await stat(out).then(
          () => true,
          () => false,
        );
        if (!started) await sleep(2);
      }
      child.kill(signal);
      const result = await exited;
      // Finished before it could be seen under way (a much faster disk): nothing to check.
      if (result.code === 0) return;
      expect(result, stderr).toEqual({ code: exitCode, signal: null });
      expect(stderr).toContain('checkout interrupted');
      const all = await readdir(out, { recursive: true });
      expect(all.filter((p) => p.split('/').pop()!.startsWith('.fsw-tmp'))).toEqual([]);
      const again = await runFsw(['checkout', '-q', digest, out], { env });
      expect(again.code, again.stderr).toBe(0);
      const diff = await runFsw(['diff', digest, out], { env });
      expect(diff).toMatchObject({ code: 0, stdout: '' });
    },
  );
});
