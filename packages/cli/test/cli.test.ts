import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { createOutput, formatBytes, parseBytes, parseDurationMs, UsageError } from '@fsw/cli';
import { describe, expect, it } from 'vitest';
import { commands } from '../src/commands/index.js';
import { runFsw } from './run-fsw.js';

const { version } = createRequire(import.meta.url)('@fsw/cli/package.json') as { version: string };

describe('fsw shell', () => {
  it('prints its version', async () => {
    const r = await runFsw(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('prints help listing usage and every command (all command modules loaded)', async () => {
    const r = await runFsw(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: fsw');
    const listed = [...r.stdout.matchAll(/^ {2}([a-z-]+)\b/gm)].map((m) => m[1]);
    expect(listed).toEqual(expect.arrayContaining(commands.flatMap((m) => m.names)));
    expect(r.stderr).toBe('');
  });

  it("loads a named command's module alone, whichever module registers it", async () => {
    const names = commands.flatMap((m) => m.names);
    const runs = await Promise.all(names.map((name) => runFsw([name, '--help'])));
    runs.forEach((r, i) => {
      expect(r.code, names[i]).toBe(0);
      expect(r.stdout).toContain(`Usage: fsw ${names[i]}`);
    });
  });

  it('exits 2 with a one-line message on an unknown option', async () => {
    const r = await runFsw(['--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^fsw: unknown option '--no-such-flag'/);
    expect(r.stdout).toBe('');
  });

  it('exits 2 on an unknown command', async () => {
    const r = await runFsw(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith('fsw: ')).toBe(true);
  });
});

describe('output plumbing', () => {
  function io(tty: boolean, env: NodeJS.ProcessEnv = {}) {
    const stdout = Object.assign(new PassThrough(), { isTTY: tty });
    const stderr = Object.assign(new PassThrough(), { isTTY: tty });
    const text = (s: PassThrough) => (s.read() as Buffer | null)?.toString() ?? '';
    return { io: { stdout, stderr, env }, out: () => text(stdout), err: () => text(stderr) };
  }

  it('writes NDJSON records and one-line warnings, and remembers failure', () => {
    const t = io(false);
    const o = createOutput(t.io, { json: true });
    o.record({ a: 1 });
    o.record({ b: 'x\ny' });
    expect(o.failed).toBe(false);
    o.warn('cannot read /x: permission denied');
    expect(o.failed).toBe(true);
    expect(t.out()).toBe('{"a":1}\n{"b":"x\\ny"}\n');
    expect(t.err()).toBe('fsw: cannot read /x: permission denied\n');
  });

  it('turns colour off without a TTY or with NO_COLOR', () => {
    expect(createOutput(io(false).io, {}).color).toBe(false);
    expect(createOutput(io(true, { NO_COLOR: '1' }).io, {}).color).toBe(false);
    expect(createOutput(io(true).io, {}).color).toBe(true);
  });

  it('draws progress only on a TTY without --json/--quiet', () => {
    for (const [tty, flags, drawn] of [
      [false, {}, false],
      [true, { json: true }, false],
      [true, { quiet: true }, false],
      [true, {}, true],
    ] as const) {
      const t = io(tty);
      const p = createOutput(t.io, flags).progress({ total: 10, unit: 'bytes', label: 'hash' });
      p.update(5, 'file.txt');
      p.stop();
      expect(t.err().length > 0).toBe(drawn);
    }
  });
});

describe('units', () => {
  it('formats and parses sizes and durations', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(10 * 1024 ** 3)).toBe('10.0 GiB');
    expect(parseBytes('10GiB')).toBe(10 * 1024 ** 3);
    expect(parseBytes('512K')).toBe(512 * 1024);
    expect(parseBytes('4096')).toBe(4096);
    expect(parseDurationMs('1h')).toBe(3_600_000);
    expect(parseDurationMs('90')).toBe(90_000);
    expect(() => parseBytes('lots')).toThrow(UsageError);
    expect(() => parseDurationMs('soon')).toThrow(UsageError);
  });
});

describe('pipes', () => {
  it('stops quietly when the reader closes the pipe early', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { FSW_BIN } = await import('./run-fsw.js');
    const dir = await mkdtemp(join(tmpdir(), 'fsw-pipe-'));
    try {
      // 3,000 equal files: `fsw dedup` lists them all (well over a pipe buffer) to a reader that leaves at once.
      await Promise.all(
        Array.from({ length: 3000 }, (_, i) =>
          writeFile(join(dir, `a-rather-long-file-name-${i}.txt`), 'same'),
        ),
      );
      const child = spawn('bash', [
        '-c',
        `"${process.execPath}" "${FSW_BIN}" dedup "${dir}" | head -c 1 >/dev/null; echo "\${PIPESTATUS[0]}"`,
      ]);
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.stderr.on('data', (d: Buffer) => (err += d));
      await new Promise((r) => child.on('close', r));
      expect(err).not.toMatch(/EPIPE|Error/);
      expect(out.trim()).toBe('0');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
