import { request } from 'node:http';
import { encodeObjectBatch, OBJECT_BATCH_TYPE } from '@fsw/remote';
import type { CacheServer } from '@fsw/server';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheClient, digestOf, grpcCode, startServer, storedObjects, tempDir } from './helpers.js';

const TOKEN = 'tok-3f9a1c';
let dir: string;
let cleanup: () => Promise<void>;
let server: CacheServer;
let base: string;
let stored: string;
const clients: CacheClient[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  server = await startServer(dir, { token: TOKEN });
  base = server.addresses.http?.url as string;
  stored = await digestOf('stored object');
  const res = await fetch(`${base}/objects/${stored}`, {
    method: 'PUT',
    body: 'stored object',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(res.status).toBe(201);
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server.close();
  await cleanup();
});

function grpcClient(token?: string): CacheClient {
  const c = new CacheClient(server.addresses.grpc?.url as string, token);
  clients.push(c);
  return c;
}

describe('token authentication', () => {
  it('HTTP: every call without the right bearer token gets 401, revealing nothing', async () => {
    const absent = await digestOf('absent');
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const answers = await Promise.all([
        fetch(`${base}/objects/${stored}`, { headers }),
        fetch(`${base}/objects/${absent}`, { headers }),
        fetch(`${base}/objects/${stored}`, { method: 'HEAD', headers }),
        fetch(`${base}/objects/${absent}`, { method: 'HEAD', headers }),
        fetch(`${base}/objects/${absent}`, { method: 'PUT', body: 'absent', headers }),
        fetch(`${base}/objects?missing`, {
          method: 'POST',
          body: JSON.stringify({ blobs: [stored] }),
          headers,
        }),
        fetch(`${base}/${stored.slice(0, 2)}/${stored.slice(2, 8)}/${stored.slice(6)}`, { headers }),
        fetch(`${base}/metrics`, { headers }),
        fetch(`${base}/objects?write`, {
          method: 'POST',
          body: encodeObjectBatch([{ digest: absent, bytes: Buffer.from('absent') }]) as BodyInit,
          headers: { ...headers, 'content-type': OBJECT_BATCH_TYPE },
        }),
      ]);
      expect(answers.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 401, 401, 401, 401]);
      // Present and absent objects get byte-identical answers.
      const [a, b] = await Promise.all([answers[0]?.text(), answers[1]?.text()]);
      expect(a).toBe(b);
      expect(answers[0]?.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect((await storedObjects(dir)).has(absent)).toBe(false);
    // Health carries no information about the store and stays open for probes.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ok = await fetch(`${base}/objects/${stored}`, { headers: { authorization: `bearer ${TOKEN}` } });
    expect(await ok.text()).toBe('stored object');
  });

  it('HTTP: an upload with Expect: 100-continue and no token is refused before its body is sent', async () => {
    const digest = await digestOf('would be uploaded');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/objects/${digest}`, {
        method: 'PUT',
        headers: { expect: '100-continue', 'content-length': 17, authorization: 'Bearer nope' },
      });
      req.on('continue', () => reject(new Error('the server asked an unauthenticated client for the body')));
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(401);
    expect((await storedObjects(dir)).has(digest)).toBe(false);
  });

  it('gRPC: every method without the right token gets UNAUTHENTICATED', async () => {
    const absent = await digestOf('absent');
    for (const client of [grpcClient(), grpcClient('wrong')]) {
      expect(await grpcCode(client.hasObject([stored]))).toBe(status.UNAUTHENTICATED);
      expect(await grpcCode(client.hasTree([stored]))).toBe(status.UNAUTHENTICATED);
      expect(await grpcCode(client.readObject(stored))).toBe(status.UNAUTHENTICATED);
      expect(await grpcCode(client.readObject(absent))).toBe(status.UNAUTHENTICATED);
      expect(await grpcCode(client.writeObject(absent, Buffer.from('absent')))).toBe(status.UNAUTHENTICATED);
      // Writing an object the server has must not answer ALREADY_EXISTS either.
      expect(await grpcCode(client.writeObject(stored, Buffer.from('stored object')))).toBe(
        status.UNAUTHENTICATED,
      );
    }
    expect((await storedObjects(dir)).has(absent)).toBe(false);
    const good = grpcClient(TOKEN);
    expect(await good.hasObject([stored, absent])).toEqual([true, false]);
    await good.writeObject(absent, Buffer.from('absent'));
    expect((await good.readObject(absent)).data.toString()).toBe('absent');
  });
});
