import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { encodeObjectBatch, OBJECT_BATCH_TYPE } from '@fsw/remote';
import type { CacheServer, CreateServerOptions, RequestEvent } from '@fsw/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytesOf, digestOf, startServer, storedObjects, strayFiles, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let server: CacheServer | undefined;
let base: string;
let events: RequestEvent[];

async function restart(options: CreateServerOptions = {}): Promise<void> {
  await server?.close();
  events = [];
  server = await startServer(dir, { grpc: false, onRequest: (e) => events.push(e), ...options });
  base = server.addresses.http?.url as string;
}

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  await restart();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await cleanup();
});

const frame = (digest: string, bytes: Uint8Array) => Buffer.from(encodeObjectBatch([{ digest, bytes }]));
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  status: number;
  text: string;
  socket: Socket | null;
}

/**
 * A `POST /objects?write` written by hand over a real socket (TCP_NODELAY). `send` writes in pieces of the given
 * sizes (cycled), waiting after each until the kernel has it and a moment more, so that each reaches the server on
 * its own; without a content-length the body goes out chunked, nothing telling the server its size up front.
 */
function openBatch(headers: Record<string, string | number> = {}, agent?: Agent) {
  const req = request(`${base}/objects?write`, {
    method: 'POST',
    headers: { 'content-type': OBJECT_BATCH_TYPE, ...headers },
    agent,
  });
  req.setNoDelay(true);
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          text: Buffer.concat(parts).toString(),
          socket: req.socket,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  // Tests that cut the connection never look at the answer.
  answer.catch(() => undefined);
  const send = async (bytes: Uint8Array, sizes: readonly number[] = [bytes.byteLength]) => {
    for (let at = 0, i = 0; at < bytes.byteLength; i++) {
      const piece = bytes.subarray(at, at + (sizes[i % sizes.length] as number));
      await new Promise<void>((resolve, reject) => req.write(piece, (e) => (e ? reject(e) : resolve())));
      await pause(1);
      at += piece.byteLength;
    }
  };
  return { req, answer, send };
}

describe('POST /objects?write, decoded as it arrives', () => {
  it('stores objects whose bytes and header fields arrive a few bytes at a time, each as soon as it is complete', async () => {
    const a = bytesOf(300, 1);
    const b = bytesOf(5000, 2);
    const empty = new Uint8Array(0);
    const [da, db, de] = (await Promise.all([a, b, empty].map((x) => digestOf(x)))) as [
      string,
      string,
      string,
    ];
    const batch = openBatch();
    // 1, 2 and 3 bytes at a time: the 2-byte digest length (cut at 1), the digest text and the 4-byte object length
    // (cut at 73 and 75) are all split across chunks.
    await batch.send(frame(da, a), [1, 2, 3]);
    // Verified and stored while the rest of the body has not even been sent.
    await expect
      .poll(async () => (await storedObjects(dir)).get(da)?.equals(a), { timeout: 10_000 })
      .toBe(true);
    await batch.send(frame(de, empty), [1]);
    await batch.send(frame(db, b), [7, 1000]);
    batch.req.end();
    const answer = await batch.answer;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ stored: 3, present: 0 });
    const stored = await storedObjects(dir);
    expect(stored.get(db)?.equals(b)).toBe(true);
    expect(stored.get(de)?.byteLength).toBe(0);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('stores an object that arrived in thousands of pieces, more than one writev takes, byte for byte', async () => {
    const bytes = bytesOf(3000, 3);
    const digest = await digestOf(bytes);
    const body = frame(digest, bytes);
    const batch = openBatch();
    // One byte per write: chunked, each write is a chunk of its own on the server too (no waiting needed).
    for (let i = 0; i < body.byteLength; i++) batch.req.write(body.subarray(i, i + 1));
    batch.req.end();
    const answer = await batch.answer;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ stored: 1, present: 0 });
    expect((await storedObjects(dir)).get(digest)?.equals(bytes)).toBe(true);
  });

  it('stores many objects that arrive in one chunk, skipping the ones it has', async () => {
    const objects = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const bytes = bytesOf(100 + i * 7, 10 + i);
        return { digest: await digestOf(bytes), bytes };
      }),
    );
    const known = objects[5] as { digest: string; bytes: Buffer };
    const put = await fetch(`${base}/objects/${known.digest}`, {
      method: 'PUT',
      body: known.bytes as BodyInit,
    });
    expect(put.status).toBe(201);
    const body = encodeObjectBatch(objects);
    expect(body.byteLength).toBeLessThan(32 * 1024);
    const batch = openBatch({ 'content-length': body.byteLength });
    await batch.send(body);
    batch.req.end();
    const answer = await batch.answer;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ stored: 63, present: 1 });
    const stored = await storedObjects(dir);
    expect(stored.size).toBe(64);
    for (const o of objects) expect(stored.get(o.digest)?.equals(o.bytes), o.digest).toBe(true);
  });

  it('answers 400 for a corrupted object as soon as it is in: those before it are stored, it and those after are not, the connection stays usable', async () => {
    // The last object is larger than what the request stream and the socket buffers hold: unless the server reads it,
    // the client cannot finish sending it.
    const [one, two, three] = [bytesOf(2000, 21), bytesOf(3000, 22), bytesOf(24 * 1024 * 1024, 23)];
    const [d1, d2, d3] = (await Promise.all([one, two, three].map((x) => digestOf(x)))) as [
      string,
      string,
      string,
    ];
    const corrupted = Buffer.from(two);
    corrupted[1500] = (corrupted[1500] as number) ^ 1;
    const parts = [frame(d1, one), frame(d2, corrupted), frame(d3, three)];
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const batch = openBatch({ 'content-length': parts.reduce((n, p) => n + p.byteLength, 0) }, agent);
      await batch.send(parts[0] as Buffer);
      await batch.send(parts[1] as Buffer, [1000]);
      // The answer comes before the last object was sent.
      const answer = await batch.answer;
      expect(answer.status).toBe(400);
      expect(answer.text).toContain(d2);
      await batch.send(parts[2] as Buffer, [1024 * 1024]);
      batch.req.end();
      // The rest of the body was read and dropped: the same connection takes the next request.
      const next = openBatch({ 'content-length': 0 }, agent);
      next.req.end();
      const after = await next.answer;
      expect(after.status).toBe(200);
      expect(after.socket).not.toBeNull();
      expect(after.socket).toBe(answer.socket);
    } finally {
      agent.destroy();
    }
    const stored = await storedObjects(dir);
    expect(stored.get(d1)?.equals(one)).toBe(true);
    expect(stored.has(d2)).toBe(false);
    expect(stored.has(d3)).toBe(false);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('keeps nothing of an object cut short by a client that disconnects, and keeps the objects completed before', async () => {
    const small = bytesOf(1000, 31);
    // Over 1 MiB: received into a temp file, which must go.
    const big = bytesOf(3 * 1024 * 1024, 32);
    const [ds, dbig] = (await Promise.all([small, big].map((x) => digestOf(x)))) as [string, string];
    const body = Buffer.concat([frame(ds, small), frame(dbig, big)]);
    const errors: unknown[] = [];
    await restart({ onError: (e) => errors.push(e) });
    const batch = openBatch({ 'content-length': body.byteLength });
    await batch.send(body.subarray(0, body.byteLength - 1024 * 1024), [64 * 1024]);
    await expect.poll(async () => (await storedObjects(dir)).has(ds), { timeout: 10_000 }).toBe(true);
    await expect.poll(async () => (await strayFiles(dir)).length, { timeout: 10_000 }).toBe(1);
    batch.req.destroy();
    await expect.poll(() => strayFiles(dir), { timeout: 10_000 }).toEqual([]);
    // The client's doing, not the server's: logged as 499 (client closed request), not reported as an error.
    await expect.poll(() => events.map((e) => e.status), { timeout: 10_000 }).toEqual([499]);
    expect(errors).toEqual([]);
    const stored = await storedObjects(dir);
    expect([...stored.keys()]).toEqual([ds]);
    expect(stored.get(ds)?.equals(small)).toBe(true);
    expect((await fetch(`${base}/objects/${dbig}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('answers 400 for a body that ends mid-object; the objects complete before stay stored', async () => {
    const first = bytesOf(2500, 33);
    const second = bytesOf(2500, 34);
    const [d1, d2] = (await Promise.all([first, second].map((x) => digestOf(x)))) as [string, string];
    const body = Buffer.concat([frame(d1, first), frame(d2, second)]);
    const cut = body.subarray(0, body.byteLength - 10);
    const answer = await fetch(`${base}/objects?write`, {
      method: 'POST',
      body: cut as BodyInit,
      headers: { 'content-type': OBJECT_BATCH_TYPE },
    });
    expect(answer.status).toBe(400);
    expect(await answer.text()).toBe(`object batch: truncated object ${d2}\n`);
    const stored = await storedObjects(dir);
    expect([...stored.keys()]).toEqual([d1]);
    expect(stored.get(d1)?.equals(first)).toBe(true);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('refuses an object announced larger than maxObjectBytes with 413 as soon as its header is in, receiving none of it', async () => {
    await restart({ maxObjectBytes: 100_000 });
    const digest = await digestOf('anything');
    // The header of a 1 GiB object: chunked, so nothing tells the server the body's size up front.
    const header = frame(digest, new Uint8Array(0));
    header.writeUInt32BE(2 ** 30, header.byteLength - 4);
    const batch = openBatch();
    await batch.send(header);
    // Answered before a byte of the object was sent.
    const answer = await batch.answer;
    expect(answer.status).toBe(413);
    expect(answer.text).toBe(`object ${digest} is larger than the server's limit of 100000 bytes\n`);
    // What follows is read and dropped: no temp file holds it (2 MiB would have spilled to one), nothing is stored.
    await batch.send(bytesOf(2 * 1024 * 1024, 41), [64 * 1024]);
    expect(await strayFiles(dir)).toEqual([]);
    batch.req.destroy();
    expect((await storedObjects(dir)).size).toBe(0);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('refuses a body over 64 MiB with 413, declared or found while streaming, keeping nothing of the object cut', async () => {
    const declared = openBatch({ 'content-length': 64 * 1024 * 1024 + 1 });
    declared.req.flushHeaders();
    expect((await declared.answer).status).toBe(413);

    // One 65 MiB object (under maxObjectBytes), chunked, sent up to one byte past the limit and no further (so that
    // the server has read everything when it closes, and the answer cannot be lost to a reset).
    const limit = 64 * 1024 * 1024;
    const header = frame(await digestOf('whatever'), new Uint8Array(0));
    header.writeUInt32BE(limit + 1024 * 1024, header.byteLength - 4);
    const batch = openBatch();
    const closed = new Promise((resolve) => batch.req.on('close', resolve));
    await batch.send(header);
    const piece = bytesOf(1024 * 1024, 42);
    let sent = header.byteLength;
    while (sent + piece.byteLength <= limit) {
      await batch.send(piece);
      sent += piece.byteLength;
    }
    // Still under the limit: the object is being received into a temp file.
    expect((await strayFiles(dir)).length).toBe(1);
    await batch.send(piece.subarray(0, limit - sent + 1));
    const answer = await batch.answer;
    expect(answer.status).toBe(413);
    expect(answer.text).toBe('object batch too large\n');
    await closed;
    await expect.poll(() => strayFiles(dir), { timeout: 10_000 }).toEqual([]);
    expect((await storedObjects(dir)).size).toBe(0);
  });
});
