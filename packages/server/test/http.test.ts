import { request } from 'node:http';
import { encodeObjectBatch, OBJECT_BATCH_TYPE, WRITE_BATCH_HEADER } from '@fsw/remote';
import type { CacheServer } from '@fsw/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytesOf, digestOf, startServer, storedObjects, strayFiles, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let server: CacheServer;
let base: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  server = await startServer(dir, { grpc: false });
  base = server.addresses.http?.url as string;
});

afterEach(async () => {
  await server.close();
  await cleanup();
});

const put = (path: string, body: Uint8Array | string, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'PUT', body: body as BodyInit, headers });

describe('HTTP object API', () => {
  it('stores a verified object and serves it back by GET and HEAD', async () => {
    const body = 'hello world\n';
    const digest = await digestOf(body);
    const created = await put(`/objects/${digest}`, body);
    expect(created.status).toBe(201);
    const again = await put(`/objects/${digest}`, body);
    expect(again.status).toBe(200);

    const got = await fetch(`${base}/objects/${digest}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe(String(body.length));
    expect(await got.text()).toBe(body);

    const head = await fetch(`${base}/objects/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(body.length));

    // The object is on disk in the fstree layout, with exactly the bytes sent.
    const stored = await storedObjects(dir);
    expect(stored.get(digest)?.toString()).toBe(body);
  });

  it('accepts bare-hex digests and percent-encoded colons', async () => {
    const body = bytesOf(1000, 3);
    const digest = await digestOf(body);
    const hex = digest.slice('blake3:'.length);
    expect((await put(`/objects/${hex}`, body)).status).toBe(201);
    const got = await fetch(`${base}/objects/blake3%3A${hex}`);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(body)).toBe(true);
  });

  it("answers the fstree C++ client's requests on <base>/bl/ake3:X/:<hex>, with and without a base path", async () => {
    // Shaped as the real client (libcurl) sends them, observed from a build of it: the digest string s split as
    // s[0:2] / s[2:8] / s[6:] (the last segment repeats ':' and the first hex digit), `Accept: */*`, and every PUT
    // with `Content-Length` and `Expect: 100-continue`, the body sent only after `100 Continue`.
    const body = bytesOf(5000, 4);
    const digest = await digestOf(body);
    const split = `${digest.slice(0, 2)}/${digest.slice(2, 8)}/${digest.slice(6)}`;
    expect(split).toBe(`bl/ake3:${digest[7]}/:${digest.slice(7)}`);
    const curl = (method: string, path: string, payload?: Uint8Array) =>
      new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const headers: Record<string, string | number> = { accept: '*/*' };
        if (payload) Object.assign(headers, { 'content-length': payload.length, expect: '100-continue' });
        const req = request(`${base}${path}`, { method, headers });
        req.on('continue', () => req.end(payload));
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        if (payload) req.flushHeaders();
        else req.end();
      });

    expect((await curl('HEAD', `/cache/${split}`)).status).toBe(404);
    expect((await curl('PUT', `/cache/${split}`, body)).status).toBe(201);
    expect((await storedObjects(dir)).get(digest)?.equals(body)).toBe(true);
    expect((await curl('HEAD', `/cache/${split}`)).status).toBe(200);
    expect((await curl('PUT', `/${split}`, body)).status).toBe(200);
    const got = await curl('GET', `/${split}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(body)).toBe(true);
    // Same store behind both path styles.
    expect((await fetch(`${base}/objects/${digest}`, { method: 'HEAD' })).status).toBe(200);
    // A split that does not overlap as the client's does names no object.
    expect(
      (await curl('HEAD', `/${digest.slice(0, 2)}/${digest.slice(2, 8)}/:x${digest.slice(8)}`)).status,
    ).toBe(404);
  });

  it('still reads the non-overlapping <s[0:2]>/<s[2:8]>/<s[8:]> split of earlier @fsw/remote versions', async () => {
    const body = bytesOf(3000, 5);
    const digest = await digestOf(body);
    const split = `${digest.slice(0, 2)}/${digest.slice(2, 8)}/${digest.slice(8)}`;
    expect((await put(`/cache/${split}`, body)).status).toBe(201);
    const got = await fetch(`${base}/${split}`);
    expect(Buffer.from(await got.arrayBuffer()).equals(body)).toBe(true);
  });

  it('refuses bytes that do not hash to the digest, storing nothing', async () => {
    const digest = await digestOf('the real content');
    const res = await put(`/objects/${digest}`, 'something else');
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/hash to blake3:/);
    expect((await fetch(`${base}/objects/${digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await storedObjects(dir)).size).toBe(0);
    expect(await strayFiles(dir)).toEqual([]);
    expect(server.metrics()).toMatch(/^fsw_server_rejected_uploads_total 1$/m);
  });

  it('refuses a large mismatching body streamed to a temp file, leaving no temp file', async () => {
    const digest = await digestOf('x');
    const res = await put(`/objects/${digest}`, bytesOf(3 * 1024 * 1024, 9));
    expect(res.status).toBe(400);
    expect((await storedObjects(dir)).size).toBe(0);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('a PUT cut short by its client (in memory or streamed to a temp file) stores nothing, is logged 499, is no server error', async () => {
    await server.close();
    const errors: unknown[] = [];
    const events: { method: string; status: number | string }[] = [];
    server = await startServer(dir, {
      grpc: false,
      onError: (e) => errors.push(e),
      onRequest: (e) => events.push({ method: e.method, status: e.status }),
    });
    base = server.addresses.http?.url as string;
    // 200 KB (kept in memory) and 3 MiB (streamed to a temp file): each sent in part, then the connection dropped.
    const puts = () => events.filter((e) => e.method === 'PUT');
    for (const [i, size] of [200_000, 3 * 1024 * 1024].entries()) {
      const bytes = bytesOf(size, size);
      const digest = await digestOf(bytes);
      const req = request(`${base}/objects/${digest}`, {
        method: 'PUT',
        headers: { 'content-length': String(size) },
      });
      req.on('error', () => {});
      req.write(bytes.subarray(0, 100_000));
      await new Promise((resolve) => setTimeout(resolve, 100));
      req.destroy();
      await expect.poll(() => puts().length, { timeout: 10_000 }).toBe(i + 1);
      expect((await fetch(`${base}/objects/${digest}`, { method: 'HEAD' })).status).toBe(404);
    }
    expect(puts()).toEqual([
      { method: 'PUT', status: 499 },
      { method: 'PUT', status: 499 },
    ]);
    expect(errors).toEqual([]);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('round-trips a multi-megabyte object (streamed, not buffered)', async () => {
    const body = bytesOf(5 * 1024 * 1024 + 17, 5);
    const digest = await digestOf(body);
    expect((await put(`/objects/${digest}`, body)).status).toBe(201);
    const got = await fetch(`${base}/objects/${digest}`);
    expect(Buffer.from(await got.arrayBuffer()).equals(body)).toBe(true);
    expect(server.stats()).toMatchObject({ objects: 1, bytes: body.length });
  });

  it('accepts sha1 digests (from sha1 builds of fstree), verified with SHA-1', async () => {
    const { createHash } = await import('node:crypto');
    const body = 'sha1 content\n';
    const digest = `sha1:${createHash('sha1').update(body).digest('hex')}`;
    expect((await put(`/objects/${digest}`, 'other bytes')).status).toBe(400);
    expect((await put(`/objects/${digest}`, body)).status).toBe(201);
    expect(await (await fetch(`${base}/objects/${digest.slice(5)}`)).text()).toBe(body);
  });

  it('stores the empty object', async () => {
    const digest = await digestOf('');
    expect(digest).toBe('blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    expect((await put(`/objects/${digest}`, '')).status).toBe(201);
    const got = await fetch(`${base}/objects/${digest}`);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe('');
  });

  it('serves objects another process put into the store directory', async () => {
    await server.ready();
    const { openStore } = await import('@fsw/tree');
    const digest = await openStore(dir).put(Buffer.from('written beside the server'));
    const got = await fetch(`${base}/objects/${digest}`);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe('written beside the server');
    expect(server.stats().objects).toBe(1);
  });

  it('answers 404 for missing objects and 400 for malformed digests', async () => {
    const missing = `blake3:${'ab'.repeat(32)}`;
    expect((await fetch(`${base}/objects/${missing}`)).status).toBe(404);
    expect((await fetch(`${base}/objects/${missing}`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${base}/objects/not-a-digest`)).status).toBe(400);
    expect((await fetch(`${base}/objects/blake3:abc`)).status).toBe(400);
    expect((await fetch(`${base}/nothing/here`)).status).toBe(404);
    expect((await fetch(`${base}/objects/${missing}`, { method: 'DELETE' })).status).toBe(405);
  });

  it('answers the batch query POST /objects?missing|present', async () => {
    const a = await digestOf('a');
    const b = await digestOf('b');
    await put(`/objects/${a}`, 'a');
    const hexB = b.slice('blake3:'.length);
    const query = JSON.stringify({ blobs: [a, hexB] });
    const missing = await fetch(`${base}/objects?missing`, { method: 'POST', body: query });
    expect(missing.status).toBe(200);
    // The digests come back exactly as they were asked for.
    expect((await missing.json()).blobs).toEqual([hexB]);
    const present = await fetch(`${base}/objects?present`, { method: 'POST', body: query });
    expect((await present.json()).blobs).toEqual([a]);

    expect((await fetch(`${base}/objects?missing`, { method: 'POST', body: '{' })).status).toBe(400);
    expect(
      (await fetch(`${base}/objects?missing`, { method: 'POST', body: JSON.stringify({ blobs: ['nope'] }) }))
        .status,
    ).toBe(400);
    expect((await fetch(`${base}/objects`, { method: 'POST', body: query })).status).toBe(400);
  });

  it('takes many objects in one POST /objects?write, verified, and announces it in batch-query answers', async () => {
    const query = await fetch(`${base}/objects?missing`, {
      method: 'POST',
      body: JSON.stringify({ blobs: [] }),
    });
    expect(query.headers.get(WRITE_BATCH_HEADER)).toBe('1');
    const bodies = ['one', 'two', 'three'].map((t) => Buffer.from(t));
    const digests = await Promise.all(bodies.map((b) => digestOf(b)));
    await put(`/objects/${digests[0]}`, bodies[0]!);
    const post = (body: Uint8Array, type = OBJECT_BATCH_TYPE) =>
      fetch(`${base}/objects?write`, {
        method: 'POST',
        body: body as BodyInit,
        headers: { 'content-type': type },
      });
    const frames = bodies.map((bytes, i) => ({ digest: digests[i]!, bytes }));
    const answer = await post(encodeObjectBatch(frames));
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ stored: 2, present: 1 });
    const stored = await storedObjects(dir);
    for (const [i, d] of digests.entries()) expect(stored.get(d)?.equals(bodies[i]!)).toBe(true);

    // A mismatch: 400 naming it; the object before it is stored, nothing of it is.
    const four = Buffer.from('four');
    const fourDigest = await digestOf(four);
    const five = await digestOf('five');
    const refused = await post(
      encodeObjectBatch([
        { digest: fourDigest, bytes: four },
        { digest: five, bytes: Buffer.from('not five') },
      ]),
    );
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain(five);
    const after = await storedObjects(dir);
    expect(after.has(fourDigest)).toBe(true);
    expect(after.has(five)).toBe(false);
    expect(await strayFiles(dir)).toEqual([]);

    // Malformed bodies, digests and content types are refused.
    const truncated = encodeObjectBatch([{ digest: five, bytes: Buffer.from('five') }]).subarray(0, 20);
    expect((await post(truncated)).status).toBe(400);
    expect((await post(encodeObjectBatch([{ digest: 'nope', bytes: four }]))).status).toBe(400);
    expect((await post(encodeObjectBatch(frames), 'application/octet-stream')).status).toBe(415);
  });

  it('serves /healthz and Prometheus /metrics', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const body = 'metric me';
    const digest = await digestOf(body);
    await put(`/objects/${digest}`, body);
    await fetch(`${base}/objects/${digest}`);
    await fetch(`${base}/objects/${await digestOf('absent')}`);
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^# TYPE fsw_server_objects gauge$/m);
    expect(text).toMatch(/^fsw_server_objects 1$/m);
    expect(text).toMatch(new RegExp(`^fsw_server_bytes ${body.length}$`, 'm'));
    expect(text).toMatch(/^fsw_server_requests_total\{protocol="http",method="PUT"\} 1$/m);
    // /healthz, the object and the missing one.
    expect(text).toMatch(/^fsw_server_requests_total\{protocol="http",method="GET"\} 3$/m);
    expect(text).toMatch(/^fsw_server_errors_total\{protocol="http",method="GET"\} 1$/m);
    expect(text).toMatch(/^fsw_server_evictions_total 0$/m);
    expect(text).toMatch(/^fsw_server_sent_bytes_total\{protocol="http"\} 9$/m);
  });

  it('skips the upload of an object it has when the client sends Expect: 100-continue', async () => {
    const body = bytesOf(200_000, 6);
    const digest = await digestOf(body);
    expect((await put(`/objects/${digest}`, body)).status).toBe(201);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/objects/${digest}`, {
        method: 'PUT',
        headers: { expect: '100-continue', 'content-length': body.length },
      });
      req.on('continue', () => reject(new Error('server asked for the body of an object it has')));
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(200);

    // A new object gets 100 Continue and is stored.
    const other = bytesOf(150_000, 7);
    const otherDigest = await digestOf(other);
    const created = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/objects/${otherDigest}`, {
        method: 'PUT',
        headers: { expect: '100-continue', 'content-length': other.length },
      });
      req.on('continue', () => req.end(other));
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(created).toBe(201);
    expect((await storedObjects(dir)).get(otherDigest)?.equals(other)).toBe(true);
  });
});

describe('HTTP limits', () => {
  it('refuses objects over maxObjectBytes with 413, declared or streamed', async () => {
    await server.close();
    server = await startServer(dir, { grpc: false, maxObjectBytes: 100_000 });
    base = server.addresses.http?.url as string;
    const big = bytesOf(300_000, 8);
    const digest = await digestOf(big);
    expect((await put(`/objects/${digest}`, big)).status).toBe(413);
    // Chunked: no content-length, the limit is enforced while streaming.
    const chunked = await fetch(`${base}/objects/${digest}`, {
      method: 'PUT',
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < big.length; i += 50_000) controller.enqueue(big.subarray(i, i + 50_000));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await storedObjects(dir)).size).toBe(0);
    expect(await strayFiles(dir)).toEqual([]);
    const small = bytesOf(90_000, 8);
    expect((await put(`/objects/${await digestOf(small)}`, small)).status).toBe(201);
  });
});
