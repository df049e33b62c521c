import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FSW_BIN, runFsw } from './run-fsw.js';

let dir: string;
const children: ChildProcessWithoutNullStreams[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-serve-'));
});

afterEach(async () => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcessWithoutNullStreams;
  grpc?: string;
  http?: string;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `fsw serve` on port 0 and waits until it printed where it listens. */
function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const child = spawn(
    process.execPath,
    [FSW_BIN, 'serve', '--dir', join(dir, 'store'), '--grpc-port', '0', '--http-port', '0', ...args],
    {
      env: { ...process.env, FSW_DEBUG: '', NO_COLOR: '1', FSW_LOG: '', FSW_TOKEN: '', ...env },
    },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!/^store /m.test(out) && !/"type":"listening"/.test(out)) return;
      child.stdout.off('data', check);
      const json = /^\{.*"listening".*\}$/m.exec(out);
      const parsed = json ? (JSON.parse(json[0]) as { grpc?: string; http?: string }) : undefined;
      resolve({
        child,
        grpc: parsed ? parsed.grpc : /^grpc (\S+)$/m.exec(out)?.[1],
        http: parsed ? parsed.http : /^http (\S+)$/m.exec(out)?.[1],
        stdout: () => out,
        stderr: () => err,
        exit,
      });
    };
    child.stdout.on('data', check);
    exit.then(({ code }) => reject(new Error(`fsw serve exited early (${code}): ${err}`)));
  });
}

describe('fsw serve', () => {
  it('prints its addresses, serves both protocols, and stops cleanly on SIGTERM', async () => {
    const server = await serve([]);
    expect(server.grpc).toMatch(/^jolt:\/\/127\.0\.0\.1:\d+$/);
    expect(server.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${server.http}/healthz`);
    expect(res.status).toBe(200);
    const put = await fetch(
      `${server.http}/objects/blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262`,
      { method: 'PUT', body: '' },
    );
    expect(put.status).toBe(201);
    server.child.kill('SIGTERM');
    expect(await server.exit).toEqual({ code: 0, signal: null });
    expect(server.stderr()).toMatch(/SIGTERM, shutting down/);
    // Nothing but the stored object is left in the store directory.
    expect(await readdir(join(dir, 'store'))).toEqual(['objects']);
  });

  it('stops cleanly on SIGINT, and logs one line per request with --verbose', async () => {
    const server = await serve(['--verbose', '--json']);
    await fetch(`${server.http}/objects/blake3:${'0'.repeat(64)}`, { method: 'HEAD' });
    await fetch(`${server.http}/healthz`);
    server.child.kill('SIGINT');
    expect(await server.exit).toEqual({ code: 0, signal: null });
    const lines = server.stderr().trim().split('\n');
    expect(lines.some((l) => / http HEAD blake3:0{64} 404 /.test(l))).toBe(true);
    expect(lines.some((l) => / http GET \/healthz 200 /.test(l))).toBe(true);
    expect(server.stdout()).toMatch(/"type":"stopped","signal":"SIGINT"/);
  });

  it('logs requests with FSW_LOG=debug and requires the token from FSW_TOKEN', async () => {
    const server = await serve([], { FSW_LOG: 'debug', FSW_TOKEN: 'sekrit' });
    expect((await fetch(`${server.http}/metrics`)).status).toBe(401);
    const ok = await fetch(`${server.http}/metrics`, { headers: { authorization: 'Bearer sekrit' } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/^fsw_server_requests_total\{protocol="http",method="GET"\} 1$/m);
    server.child.kill('SIGTERM');
    expect((await server.exit).code).toBe(0);
    expect(server.stderr()).toMatch(/ http GET \/metrics 401 /);
  });

  it('rejects bad options with a usage error', async () => {
    const bad = await runFsw(['serve', '--max-size', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid size 'lots'/);
    const port = await runFsw(['serve', '--grpc-port', '70000']);
    expect(port.code).toBe(2);
    const none = await runFsw(['serve', '--no-grpc', '--no-http']);
    expect(none.code).toBe(2);
  });

  it('fails clearly when a port is taken', async () => {
    const first = await serve(['--no-grpc']);
    const port = new URL(first.http as string).port;
    const second = await runFsw(['serve', '--dir', join(dir, 'other'), '--no-grpc', '--http-port', port]);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(
      `fsw: cannot listen for HTTP on 127.0.0.1:${port}: address already in use (EADDRINUSE)\n`,
    );
    first.child.kill('SIGTERM');
    await first.exit;
  });

  it('fails clearly, and exits, when the gRPC port is taken by another program', async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const run = await runFsw(
        ['serve', '--dir', join(dir, 'store'), '--grpc-port', String(port), '--http-port', '0'],
        { timeoutMs: 15_000 },
      );
      // Exit code 1 by itself: a hang (the HTTP listener left open) would be killed by the timeout, code null.
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      // Only our line: not grpc-js's "No address added out of total 1 resolved".
      expect(run.stderr).toBe(
        `fsw: cannot listen for gRPC on 127.0.0.1:${port}: address already in use (EADDRINUSE)\n`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
