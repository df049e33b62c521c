import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RemoteError } from '@fsw/errors';
import { createServer } from '@fsw/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, tempDir } from './helpers.js';

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
