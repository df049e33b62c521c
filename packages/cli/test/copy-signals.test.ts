import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FSW_BIN } from './run-fsw.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-cli-copy-signals-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fsw copy stopped by signals', () => {
  it.each([
    [['SIGTERM', 'SIGINT', 'SIGTERM'], 143],
    [['SIGINT', 'SIGINT'], 130],
  ] as const)('%j while a large file is in flight: no temp file left, exit %i', async (signals, exitCode) => {
    // Sparse: made at once, but copied byte by byte (about a second), long enough to be caught in flight.
    await writeFile(join(dir, 'big'), '');
    await truncate(join(dir, 'big'), 256 * 1024 * 1024);
    await mkdir(join(dir, 'dst'));
    const child = spawn(process.execPath, [FSW_BIN, 'copy', 'big', 'dst'], {
      cwd: dir,
      env: { ...process.env, FSW_DEBUG: '', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    let inFlight = false;
    const deadline = Date.now() + 20_000;
    while (!inFlight && child.exitCode === null && Date.now() < deadline) {
      inFlight = (await readdir(join(dir, 'dst'))).some((n) => n.endsWith('.tmp'));
      if (!inFlight) await sleep(2);
    }
    // The later ones arrive while the file in flight is finished (a copyFile cannot be interrupted), then removed.
    for (const signal of signals) {
      child.kill(signal);
      await sleep(30);
    }
    const { code, signal } = await exited;
    // Finished before it could be seen under way (a much faster disk): nothing to check.
    if (!inFlight) return;
    expect({ code, signal }, stderr).toEqual({ code: exitCode, signal: null });
    expect(stderr).toContain('copy interrupted');
    expect(await readdir(join(dir, 'dst'))).toEqual([]);
  });
});
