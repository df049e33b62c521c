import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FSW_BIN, runFsw } from './run-fsw.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function fresh(): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'fsw-cli-watch-')));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A running `fsw watch` with its output so far and a way to wait for it (no fixed sleeps). */
interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  until(done: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  exit(): Promise<number | null>;
}

function start(args: readonly string[], cwd?: string): Running {
  const child = spawn(process.execPath, [FSW_BIN, ...args], {
    cwd,
    env: { ...process.env, FSW_DEBUG: '', NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let wake: (() => void) | undefined;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    wake?.();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    wake?.();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  cleanups.push(async () => {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    async until(done, what, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${what}; stdout: ${out} stderr: ${err}`);
        if (child.exitCode !== null)
          throw new Error(`fsw exited (${child.exitCode}) before ${what}; stderr: ${err}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
    },
    exit: () => exited,
  };
}

describe('fsw watch', () => {
  it('prints one line per event with paths as the directory was given, and stops cleanly on SIGTERM', async () => {
    const dir = await fresh();
    await writeFile(join(dir, 'old.txt'), '1');
    await mkdir(join(dir, 'sub'));
    // Watch the temp folder through its name relative to the parent, as a user would type it.
    const name = dir.slice(dir.lastIndexOf('/') + 1);
    const fsw = start(['watch', name], join(dir, '..'));
    await fsw.until(() => fsw.stderr().includes('watching'), 'the watcher to start');
    await rename(join(dir, 'old.txt'), join(dir, 'sub', 'new.txt'));
    await mkdir(join(dir, 'sub', 'deeper'));
    await fsw.until(() => fsw.stdout().split('\n').length >= 3, 'two events');
    expect(fsw.stdout().trim().split('\n').sort()).toEqual([
      `created ${name}/sub/deeper/`,
      `renamed ${name}/old.txt -> ${name}/sub/new.txt`,
    ]);
    fsw.child.kill('SIGTERM');
    expect(await fsw.exit()).toBe(0);
  });

  it('prints NDJSON with --json, honours --ignore and --gitignore, and stops on SIGINT', async () => {
    const dir = await fresh();
    await writeFile(join(dir, '.gitignore'), 'build/\n');
    const fsw = start(['watch', dir, '--json', '--ignore', '*.log', '--gitignore', '--debounce', '300']);
    await fsw.until(() => fsw.stderr().includes('watching'), 'the watcher to start');
    await writeFile(join(dir, 'debug.log'), 'x');
    await mkdir(join(dir, 'build'));
    await writeFile(join(dir, 'build', 'out.js'), 'x');
    await writeFile(join(dir, 'main.ts'), 'x');
    await fsw.until(() => fsw.stdout().includes('main.ts'), 'the main.ts event');
    fsw.child.kill('SIGINT');
    expect(await fsw.exit()).toBe(0);
    const records = fsw
      .stdout()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toEqual([
      { type: 'created', path: join(dir, 'main.ts'), isDir: false, timeMs: expect.any(Number) },
    ]);
  });

  it('runs a command after each batch, never twice at once, with the changed paths in FSW_CHANGED', async () => {
    const dir = await fresh();
    const logs = await fresh();
    const log = join(logs, 'runs.log');
    // The command takes a while: changes made while it runs must wait and be merged into the next run.
    const script = `
      const fs = require('node:fs');
      const lock = ${JSON.stringify(join(logs, 'lock'))};
      if (fs.existsSync(lock)) fs.appendFileSync(${JSON.stringify(log)}, 'OVERLAP\\n');
      fs.writeFileSync(lock, '');
      fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.env.FSW_CHANGED.split('\\n')) + '\\n');
      setTimeout(() => fs.rmSync(lock), 400);
    `;
    const fsw = start(['watch', dir, '--debounce', '20', '--', process.execPath, '-e', script]);
    await fsw.until(() => fsw.stderr().includes('watching'), 'the watcher to start');
    const names = Array.from({ length: 6 }, (_, i) => `f${i}.txt`);
    for (const name of names) {
      await writeFile(join(dir, name), name);
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
    const logText = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    await fsw.until(
      () => names.every((n) => logText().includes(join(dir, n))),
      'every path in FSW_CHANGED',
      30_000,
    );
    fsw.child.kill('SIGTERM');
    expect(await fsw.exit()).toBe(0);
    const text = logText();
    const runs = text.trim().split('\n');
    expect(runs).not.toContain('OVERLAP');
    const changed = runs.flatMap((line) => JSON.parse(line) as string[]);
    expect(new Set(changed)).toEqual(new Set(names.map((n) => join(dir, n))));
    // Six changes 120 ms apart against a 400 ms command: some runs carried several merged paths.
    expect(runs.length).toBeLessThan(names.length);
  });

  it('fails with a clear message for a missing directory or an unknown command', async () => {
    const dir = await fresh();
    const missing = await runFsw(['watch', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `fsw: cannot watch ${join(dir, 'nope')}: no such file or directory (ENOENT)\n`,
    );
    const unknown = await runFsw(['watch', dir, '--', 'no-such-command-fsw']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('fsw: command not found: no-such-command-fsw\n');
  });
});
