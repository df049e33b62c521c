import type { CacheServer } from '@fsw/server';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  bytesOf,
  CacheClient,
  digestOf,
  grpcCode,
  startServer,
  storedObjects,
  strayFiles,
  tempDir,
} from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let server: CacheServer;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  server = await startServer(dir);
});

afterEach(async () => {
  await server.close();
  await cleanup();
});

describe('concurrent uploads', () => {
  it('eight clients (gRPC and HTTP) uploading overlapping objects at once leave each object stored once, intact', async () => {
    // 40 objects, a few large enough to stream through temp files; each client uploads an overlapping half of them.
    const pool = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const bytes = bytesOf(i % 8 === 0 ? 1_500_000 + i : 1000 + i * 37, 100 + i);
        return { bytes, digest: await digestOf(bytes) };
      }),
    );
    const http = server.addresses.http?.url as string;
    const grpcClients = Array.from(
      { length: 4 },
      () => new CacheClient(server.addresses.grpc?.url as string),
    );
    const outcomes: (number | string)[] = [];
    const clientWork = async (c: number) => {
      const mine = pool.filter((_, i) => (i + c) % 2 === 0 || i % 5 === c % 5);
      // Different clients go through their share in different orders, so the same object is often in flight twice.
      if (c % 2) mine.reverse();
      for (const { bytes, digest } of mine) {
        if (c < 4) {
          const code = await grpcCode((grpcClients[c] as CacheClient).writeObject(digest, bytes, 32 * 1024));
          outcomes.push(code === 'resolved' ? 'OK' : code);
        } else {
          const res = await fetch(`${http}/objects/${digest}`, { method: 'PUT', body: bytes as BodyInit });
          outcomes.push(res.status);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: 8 }, (_, c) => clientWork(c)));
    } finally {
      for (const g of grpcClients) g.close();
    }
    // Every upload succeeded: stored, already there (HTTP 200), or ALREADY_EXISTS.
    for (const o of outcomes) expect(['OK', status.ALREADY_EXISTS, 200, 201]).toContain(o);
    expect(outcomes.filter((o) => o === 'OK' || o === 201).length).toBeGreaterThanOrEqual(pool.length);

    const stored = await storedObjects(dir);
    expect(stored.size).toBe(pool.length);
    for (const { bytes, digest } of pool) {
      expect(stored.get(digest)?.equals(bytes)).toBe(true);
      expect(await digestOf(stored.get(digest) as Buffer)).toBe(digest);
    }
    expect(await strayFiles(dir)).toEqual([]);
    expect(server.stats()).toMatchObject({
      objects: pool.length,
      bytes: pool.reduce((n, p) => n + p.bytes.length, 0),
    });
  });
});
