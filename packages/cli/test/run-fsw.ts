import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

/** The built `fsw` entry point, resolved the way a user's install would. */
export const FSW_BIN = createRequire(import.meta.url)
  .resolve('@fsw/cli/package.json')
  .replace(/package\.json$/, 'dist/bin.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `fsw` binary in a child process (no TTY), with optional stdin and extra environment. */
export function runFsw(
  args: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FSW_BIN, ...args], {
      cwd: options.cwd,
      env: { ...process.env, FSW_DEBUG: '', NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 60_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.end(options.input ?? '');
  });
}
