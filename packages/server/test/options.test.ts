import { readdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { RemoteError } from '@fsw/errors';
import { createServer } from '@fsw/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

  it('reports a port in use as E_UNAVAILABLE naming the address, and releases what it had bound', async () => {
    const first = await startServer(dir);
    try {
      const taken = first.addresses.http?.port as number;
      const error = await failure(
        createServer({ dir: join(dir, 'b'), grpc: { port: 0 }, http: { port: taken } }),
      );
      expect(error.code).toBe('E_UNAVAILABLE');
      expect(error.message).toContain(`127.0.0.1:${taken}`);
      const grpcTaken = first.addresses.grpc?.port as number;
      const grpcError = await failure(
        createServer({ dir: join(dir, 'c'), grpc: { port: grpcTaken }, http: { port: 0 } }),
      );
      expect(grpcError.code).toBe('E_UNAVAILABLE');
      expect(grpcError.message).toContain(`127.0.0.1:${grpcTaken}`);
    } finally {
      await first.close();
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
