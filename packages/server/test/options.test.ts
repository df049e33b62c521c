import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemoteError } from '@fsw/errors';
import { createServer } from '@fsw/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { bytesOf, digestOf, startServer, storedObjects, strayFiles, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});

afterEach(async () => {
  await cleanup();
});

async function failure(promise: Promise<unknown>): Promise<RemoteError> {
  try {
    await promise;
  } catch (error) {
    expect(RemoteError.is(error)).toBe(true);
    return error as RemoteError;
  }
  throw new Error('expected createServer to fail');
}

/** A plain TCP listener on 127.0.0.1, on a port the OS picked: another program holding the port. */
async function occupyPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const blocker = createNetServer();
  await new Promise<void>((resolve, reject) => {
    blocker.once('error', reject);
    blocker.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (blocker.address() as AddressInfo).port,
    close: () => new Promise((resolve) => blocker.close(() => resolve())),
  };
}

/** A port nothing listens on right now (picked by the OS, then released). */
async function freePort(): Promise<number> {
  const { port, close } = await occupyPort();
  await close();
  return port;
}

/** Whether a connection to 127.0.0.1:port is refused, i.e. nothing listens there. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNREFUSED' ? resolve(true) : reject(error),
    );
  });
}

describe('createServer on a port that is taken', () => {
  let blocker: { port: number; close: () => Promise<void> };
  beforeEach(async () => {
    blocker = await occupyPort();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await blocker.close();
  });

  it('gRPC: E_ADDR_IN_USE naming host:port and the cause, and the HTTP listener it had started is closed again', async () => {
    const logged = vi.spyOn(console, 'error');
    const httpPort = await freePort();
    const error = await failure(
      createServer({ dir, grpc: { port: blocker.port }, http: { port: httpPort } }),
    );
    expect(error.code).toBe('E_ADDR_IN_USE');
    expect(error.message).toBe(
      `cannot listen for gRPC on 127.0.0.1:${blocker.port}: address already in use (EADDRINUSE)`,
    );
    expect((error.cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    // grpc-js's own "No address added out of total 1 resolved" line must not reach the user's stderr.
    expect(logged.mock.calls.flat().join(' ')).not.toMatch(/No address added/);
    expect(await refused(httpPort)).toBe(true);
  });

  it('HTTP: E_ADDR_IN_USE naming host:port and the cause, and gRPC is not left listening', async () => {
    const grpcPort = await freePort();
    const error = await failure(
      createServer({ dir, grpc: { port: grpcPort }, http: { port: blocker.port } }),
    );
    expect(error.code).toBe('E_ADDR_IN_USE');
    expect(error.message).toBe(
      `cannot listen for HTTP on 127.0.0.1:${blocker.port}: address already in use (EADDRINUSE)`,
    );
    expect(await refused(grpcPort)).toBe(true);
  });

  it('the store is released: a server on free ports starts on it right after', async () => {
    await failure(createServer({ dir, grpc: { port: blocker.port }, http: { port: 0 } }));
    const server = await startServer(dir);
    await server.close();
  });

  it('a process whose createServer failed after HTTP had started exits by itself (nothing left running)', async () => {
    const script = `
      import { createServer } from '@fsw/server';
      try {
        await createServer({ dir: ${JSON.stringify(dir)}, grpc: { port: ${blocker.port} }, http: { port: 0 } });
        console.log('started');
      } catch (error) {
        console.log(error.code);
        process.exitCode = 3;
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      timeout: 15_000,
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    expect(exit).toEqual({ code: 3, signal: null });
    expect(out.trim()).toBe('E_ADDR_IN_USE');
  });
});

describe('createServer on an address it cannot bind', () => {
  it.each([
    ['grpc', 'gRPC'],
    ['http', 'HTTP'],
  ] as const)('%s on an unknown host: E_UNAVAILABLE naming the host', async (protocol, name) => {
    const host = 'no-such-host.invalid';
    const options =
      protocol === 'grpc'
        ? { grpc: { host, port: 0 }, http: false as const }
        : { grpc: false as const, http: { host, port: 0 } };
    const error = await failure(createServer({ dir, ...options }));
    expect(error.code).toBe('E_UNAVAILABLE');
    expect(error.message).toMatch(new RegExp(`^cannot listen for ${name} on ${host}:0: `));
  });
});

describe('createServer options', () => {
  it('refuses bad options with E_INVALID_ARGUMENT', async () => {
    const cases = [
      { maxBytes: -1 },
      { retentionMs: Number.NaN },
      { grpc: { port: 70_000 }, http: false as const },
      { grpc: false as const, http: false as const },
      { token: 'has space' },
    ];
    for (const options of cases) {
      const error = await failure(createServer({ dir, grpc: { port: 0 }, http: { port: 0 }, ...options }));
      expect(error.code).toBe('E_INVALID_ARGUMENT');
    }
  });

  it('names the path when the store directory cannot be created', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    const error = await failure(createServer({ dir: file, grpc: { port: 0 }, http: { port: 0 } }));
    expect(error.code).toMatch(/^E_(NOT_DIR|EXISTS)$/);
    expect(error.path).toContain(file);
  });

  it('close() cuts uploads still running after the grace period, leaving nothing behind', async () => {
    const server = await startServer(dir);
    const url = server.addresses.http?.url as string;
    const big = bytesOf(3 * 1024 * 1024, 1);
    const digest = await digestOf(big);
    const req = request(`${url}/objects/${digest}`, {
      method: 'PUT',
      headers: { 'content-length': big.length },
    });
    const failed = new Promise((resolve) => req.on('error', resolve));
    req.write(big.subarray(0, 2 * 1024 * 1024));
    // Wait until the body has started streaming into a temp file.
    const tempRoot = join(dir, '.fsw-server-tmp');
    const spilled = () =>
      readdirSync(tempRoot, { recursive: true, encoding: 'utf8' }).some((name) => {
        const path = join(tempRoot, name);
        return statSync(path).isFile() && statSync(path).size >= 1024 * 1024;
      });
    await expect.poll(spilled, { timeout: 10_000 }).toBe(true);
    await server.close({ graceMs: 200 });
    await failed;
    expect(await strayFiles(dir)).toEqual([]);
    expect((await storedObjects(dir)).size).toBe(0);
  });

  it('closes when its signal is aborted, and close() is idempotent', async () => {
    const controller = new AbortController();
    const server = await startServer(dir, { signal: controller.signal });
    const url = server.addresses.http?.url as string;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    controller.abort();
    await server.close();
    await server.close();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
