import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { decodeBatchAnswer, openRemote, pull, push } from '@fsw/remote';
import { openStore } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { putSpec, reachable, sampleSpec, tempDir } from './helpers/fixtures.js';

/**
 * Behaviour seen from a jolt-cache server built from its sources (Go, gRPC + HTTP on 127.0.0.1), reproduced here by
 * small stand-ins so the client keeps working with it without needing that server:
 * - gRPC `WriteObject` stores the object and ends the call with status OK but no `WriteObjectResponse` message;
 * - HTTP `POST /objects?missing` with `{"blobs":["blake3:…"]}` answers 500 `{"message":"Bad request: … Unmarshal type
 *   error …"}` (that build cannot decode digest strings); `HEAD`/`GET`/`PUT /objects/<digest>` work (404 when absent,
 *   `PUT` answers 201);
 * - a batch answer it does give is `{"missing": [...] | null, "present": [...] | null}`, `null` for an empty list.
 */

let tmp: { dir: string; cleanup: () => Promise<void> };
const open: { close(): Promise<void> }[] = [];
beforeEach(async () => {
  tmp = await tempDir('fsw-remote-jolt-');
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  await tmp.cleanup();
});

/** Reads the digest (field 1) of the first gRPC-framed WriteObjectRequest in `body`. */
function firstDigest(body: Buffer): string {
  // 5-byte frame header, then tag 0x0a, a one-byte length (digests are < 128 bytes), the string.
  expect(body[5]).toBe(0x0a);
  const length = body[6]!;
  return body.subarray(7, 7 + length).toString('utf8');
}

/** An HTTP/2 gRPC endpoint whose WriteObject ends with `grpc-status` `status` and never sends a response message. */
async function startNoMessageGrpc(status: number) {
  const writes: string[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (headers[':path'] === '/fstree.CacheService/WriteObject' && status === 0) {
        writes.push(firstDigest(Buffer.concat(chunks)));
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () =>
        stream.sendTrailers({
          'grpc-status': String(status),
          'grpc-message': status ? 'unknown method' : '',
        }),
      );
      stream.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake = {
    url: `jolt://127.0.0.1:${port}`,
    writes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  open.push(fake);
  return fake;
}

/** The HTTP object API as that jolt-cache build serves it; `batch` chooses how it answers the batch query. */
async function startJoltLikeHttp(batch: 'broken' | 'null-lists' | 'flaky') {
  const objects = new Map<string, Buffer>();
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push(
        `${req.method} ${url.pathname === '/objects' ? `/objects${url.search}` : '/objects/<d>'}`,
      );
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && url.pathname === '/objects') {
        // 'flaky': only the first query fails, as a server that is briefly overloaded.
        if (batch === 'broken' || (batch === 'flaky' && count(requests, 'POST /objects?missing') === 1)) {
          return json(500, {
            message:
              'Bad request: code=400, message=Unmarshal type error: expected=utils.Digest, got=string, field=blobs',
          });
        }
        const asked = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { blobs: string[] }).blobs;
        const missing = asked.filter((d) => !objects.has(d));
        return json(200, { missing: missing.length ? missing : null, present: null });
      }
      const digest = decodeURIComponent(url.pathname.replace(/^\/objects\//, ''));
      if (req.method === 'PUT') {
        objects.set(digest, Buffer.concat(chunks));
        return json(201, null);
      }
      const body = objects.get(digest);
      if (!body) return json(404, { message: 'Not found' });
      res.writeHead(200, { 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake = {
    url: `http://127.0.0.1:${port}`,
    objects,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  open.push(fake);
  return fake;
}

const count = (list: string[], what: string) => list.filter((r) => r === what).length;

describe('jolt-cache compatibility', () => {
  it('gRPC: a WriteObject ended with status OK and no response message is a success', async () => {
    const server = await startNoMessageGrpc(0);
    const remote = openRemote(server.url, { retries: 0 });
    try {
      const digest = 'blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355';
      await remote.write(digest, Buffer.from('hello world\n'));
      expect(server.writes).toEqual([digest]);
    } finally {
      await remote.close();
    }
  });

  it('gRPC: a real UNIMPLEMENTED status is still an error', async () => {
    const server = await startNoMessageGrpc(12);
    const remote = openRemote(server.url, { retries: 0 });
    try {
      await expect(
        remote.write(
          'blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355',
          Buffer.from('hello world\n'),
        ),
      ).rejects.toMatchObject({ code: 'E_PROTOCOL' });
    } finally {
      await remote.close();
    }
  });

  it('HTTP: a batch query still answered 500 after the retries falls back to HEAD per object, once, and the push completes', async () => {
    const server = await startJoltLikeHttp('broken');
    const local = openStore(join(tmp.dir, 'local'));
    const root = await putSpec(local, sampleSpec(5));
    const all = await reachable(local, root);
    const total = all.trees.length + all.files.length;
    const remote = openRemote(server.url, { retries: 2, retryDelayMs: 5 });
    try {
      const first = await push(local, remote, root);
      expect(first.objectsUploaded).toBe(total);
      // The first query and its two retries.
      expect(count(server.requests, 'POST /objects?missing')).toBe(3);
      expect(count(server.requests, 'PUT /objects/<d>')).toBe(total);
      const again = await push(local, remote, root);
      expect(again.objectsUploaded).toBe(0);
      // The remote remembered the batch query is unusable: no further POST.
      expect(count(server.requests, 'POST /objects?missing')).toBe(3);
      const back = openStore(join(tmp.dir, 'back'));
      await pull(remote, back, root);
      for (const d of [...all.trees, ...all.files]) {
        expect(Buffer.from(await back.get(d)).equals(Buffer.from(await local.get(d))), d).toBe(true);
      }
    } finally {
      await remote.close();
    }
  });

  it('HTTP: a batch query answered 500 once is retried and the batch query stays in use', async () => {
    const server = await startJoltLikeHttp('flaky');
    const local = openStore(join(tmp.dir, 'local'));
    const root = await putSpec(local, sampleSpec(7));
    const remote = openRemote(server.url, { retries: 2, retryDelayMs: 5 });
    try {
      await push(local, remote, root);
      expect(count(server.requests, 'POST /objects?missing')).toBeGreaterThanOrEqual(2);
      expect(count(server.requests, 'HEAD /objects/<d>')).toBe(0);
      const before = count(server.requests, 'POST /objects?missing');
      const again = await push(local, remote, root);
      expect(again.objectsUploaded).toBe(0);
      expect(count(server.requests, 'POST /objects?missing')).toBeGreaterThan(before);
      expect(count(server.requests, 'HEAD /objects/<d>')).toBe(0);
    } finally {
      await remote.close();
    }
  });

  it('HTTP: batch answers with null lists mean "none", and a re-push uploads nothing', async () => {
    const server = await startJoltLikeHttp('null-lists');
    const local = openStore(join(tmp.dir, 'local'));
    const root = await putSpec(local, sampleSpec(6));
    const remote = openRemote(server.url, { retryDelayMs: 5 });
    try {
      const first = await push(local, remote, root);
      expect(first.objectsUploaded).toBeGreaterThan(0);
      const before = server.requests.length;
      const again = await push(local, remote, root);
      expect(again.objectsUploaded).toBe(0);
      const during = server.requests.slice(before);
      expect(during.every((r) => r === 'POST /objects?missing')).toBe(true);
      expect(count(server.requests, 'HEAD /objects/<d>')).toBe(0);
    } finally {
      await remote.close();
    }
  });

  it('decodeBatchAnswer reads null lists as empty', () => {
    const D = 'blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355';
    expect(decodeBatchAnswer('{"missing":null,"present":null}', 'missing')).toEqual([]);
    expect(decodeBatchAnswer('{"missing":null,"present":null}', 'present')).toEqual([]);
    expect(decodeBatchAnswer(JSON.stringify({ missing: [D], present: null }), 'missing')).toEqual([D]);
    expect(decodeBatchAnswer(JSON.stringify({ missing: null, present: [D] }), 'present')).toEqual([D]);
    expect(() => decodeBatchAnswer('{"present":[]}', 'missing')).toThrow(
      expect.objectContaining({ code: 'E_PROTOCOL' }),
    );
  });
});
