import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheServer, CreateServerOptions } from '@fsw/server';
import { encodeTree } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytesOf, CacheClient, digestOf, startServer, storedObjects, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let server: CacheServer | undefined;
let client: CacheClient | undefined;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});

afterEach(async () => {
  client?.close();
  client = undefined;
  await server?.close();
  server = undefined;
  await cleanup();
});

async function start(options: CreateServerOptions): Promise<{ http: string; grpc: CacheClient }> {
  server = await startServer(dir, options);
  client = new CacheClient(server.addresses.grpc?.url as string);
  return { http: server.addresses.http?.url as string, grpc: client };
}

/** Uploads `bytes` over HTTP and returns the digest. */
async function upload(http: string, bytes: Uint8Array): Promise<string> {
  const digest = await digestOf(bytes);
  const res = await fetch(`${http}/objects/${digest}`, { method: 'PUT', body: bytes as BodyInit });
  expect(res.status).toBe(201);
  return digest;
}

/** Which of `digests` the store directory still holds (looked up on disk, not through the server). */
async function onDisk(digests: Record<string, string>): Promise<string[]> {
  const stored = await storedObjects(dir);
  return Object.entries(digests)
    .filter(([, d]) => stored.has(d))
    .map(([name]) => name);
}

describe('eviction', () => {
  it('removes least-recently-used objects first, down to 90% of maxBytes', async () => {
    const { http } = await start({ maxBytes: 10_000, retentionMs: 0 });
    const a = await upload(http, bytesOf(3000, 1));
    const b = await upload(http, bytesOf(3000, 2));
    const c = await upload(http, bytesOf(3000, 3));
    // Reading A makes it recently used: B is now the oldest.
    expect((await fetch(`${http}/objects/${a}`)).status).toBe(200);
    const d = await upload(http, bytesOf(3000, 4));
    await server?.evict();
    expect(await onDisk({ a, b, c, d })).toEqual(['a', 'c', 'd']);
    expect(server?.stats()).toMatchObject({ objects: 3, bytes: 9000, evictions: 1, evictedBytes: 3000 });
    expect(server?.metrics()).toMatch(/^fsw_server_evictions_total 1$/m);
    expect((await fetch(`${http}/objects/${b}`)).status).toBe(404);
  });

  it('never evicts objects younger than retentionMs', async () => {
    const { http } = await start({ maxBytes: 10_000, retentionMs: 3_600_000 });
    const digests: Record<string, string> = {};
    for (let i = 0; i < 4; i++) digests[`o${i}`] = await upload(http, bytesOf(3000, 10 + i));
    expect(await server?.evict()).toEqual({ removed: 0, bytesFreed: 0 });
    expect(await onDisk(digests)).toEqual(['o0', 'o1', 'o2', 'o3']);
    expect(server?.stats().bytes).toBe(12_000);
  });

  it('keeps what a running push was told about (HasTree) until its tree is complete', async () => {
    const { http, grpc } = await start({ maxBytes: 10_000, retentionMs: 0 });
    const f1Bytes = bytesOf(3000, 21);
    const f2Bytes = bytesOf(3000, 22);
    const f1 = await upload(http, f1Bytes);
    const x = await upload(http, bytesOf(3000, 23));
    const f2 = await digestOf(f2Bytes);
    const rootBytes = encodeTree([
      { name: 'f1', digest: f1, type: 'file', mode: 0o644 },
      { name: 'f2', digest: f2, type: 'file', mode: 0o644 },
    ]);
    const root = await digestOf(rootBytes);
    await grpc.writeObject(root, rootBytes);
    // The push asks what is missing: f2. The root and f1 are announced with it.
    expect(await grpc.hasTree([root])).toMatchObject({ missingObjects: [f2] });
    const y = await upload(http, bytesOf(3000, 24));
    const z = await upload(http, bytesOf(3000, 25));
    await server?.evict();
    // Plain LRU would have removed x and then the root; the announced root and f1 stay, y goes instead.
    expect(await onDisk({ f1, x, root, y, z })).toEqual(['f1', 'root', 'z']);

    // The push completes: uploading f2 and asking again finds nothing missing, which ends the announcement.
    await grpc.writeObject(f2, f2Bytes);
    expect(await grpc.hasTree([root])).toMatchObject({ missingTrees: [], missingObjects: [] });
    const w = await upload(http, bytesOf(3000, 26));
    await server?.evict();
    // Now the root is just another object, evicted in LRU order (z first, then the root).
    expect(await onDisk({ f1, f2, root, z, w })).toEqual(['f1', 'f2', 'w']);
  });

  it('reports an evicted object missing below a tree that was complete before', async () => {
    const { http, grpc } = await start({ maxBytes: 10_000, retentionMs: 0 });
    const leafBytes = bytesOf(3000, 51);
    const leaf = await upload(http, leafBytes);
    const rootBytes = encodeTree([{ name: 'leaf', digest: leaf, type: 'file', mode: 0o644 }]);
    const root = await digestOf(rootBytes);
    await grpc.writeObject(root, rootBytes);
    expect(await grpc.hasTree([root])).toMatchObject({ missingTrees: [], missingObjects: [] });
    // The push is complete (nothing announced any more). Reading the root keeps it fresh; filling the store evicts the
    // leaf, now the least recently used object.
    expect((await fetch(`${http}/objects/${root}`)).status).toBe(200);
    const fillers: Record<string, string> = {};
    for (let i = 0; i < 3; i++) fillers[`filler${i}`] = await upload(http, bytesOf(2900, 52 + i));
    await server?.evict();
    expect(await onDisk({ leaf, root, ...fillers })).toEqual(['root', 'filler0', 'filler1', 'filler2']);
    expect(await grpc.hasTree([root])).toMatchObject({ missingTrees: [], missingObjects: [leaf] });
  });

  it('keeps everything below a complete tree that a running push builds on', async () => {
    const { http, grpc } = await start({ maxBytes: 12_000, retentionMs: 0 });
    // An earlier push left a complete tree T (two files).
    const t1 = await upload(http, bytesOf(3000, 61));
    const t2 = await upload(http, bytesOf(3000, 62));
    const tBytes = encodeTree([
      { name: 't1', digest: t1, type: 'file', mode: 0o644 },
      { name: 't2', digest: t2, type: 'file', mode: 0o644 },
    ]);
    const t = await digestOf(tBytes);
    await grpc.writeObject(t, tBytes);
    expect(await grpc.hasTree([t])).toMatchObject({ missingObjects: [] });
    const filler = await upload(http, bytesOf(2000, 63));
    // A new push of a root that reuses T (skipped by the walk: it is known complete) and adds a missing file.
    const newBytes = bytesOf(1000, 64);
    const added = await digestOf(newBytes);
    const rootBytes = encodeTree([
      { name: 'added', digest: added, type: 'file', mode: 0o644 },
      { name: 't', digest: t, type: 'dir', mode: 0o755 },
    ]);
    const root = await digestOf(rootBytes);
    await grpc.writeObject(root, rootBytes);
    expect(await grpc.hasTree([root])).toMatchObject({ missingObjects: [added] });
    // Pressure: t1 and t2 are the least recently used, but the running push announced T, so the filler goes first.
    const more = await upload(http, bytesOf(4000, 65));
    await server?.evict();
    expect(await onDisk({ t1, t2, t, filler, root, more })).toEqual(['t1', 't2', 't', 'root', 'more']);
  });

  it('keeps the objects named in an HTTP batch query, until announceTtlMs passes', async () => {
    const { http } = await start({ maxBytes: 10_000, retentionMs: 0, announceTtlMs: 300 });
    const p = await upload(http, bytesOf(3000, 31));
    const o = await upload(http, bytesOf(3000, 32));
    const absent = await digestOf('not uploaded yet');
    const res = await fetch(`${http}/objects?missing`, {
      method: 'POST',
      body: JSON.stringify({ blobs: [p, absent] }),
    });
    expect((await res.json()).blobs).toEqual([absent]);
    const q = await upload(http, bytesOf(3000, 33));
    const r = await upload(http, bytesOf(6000, 34));
    await server?.evict();
    expect(await onDisk({ p, o, q, r })).toEqual(['p', 'r']);

    // Once the announcement expires, p is evictable like any other object.
    await expect
      .poll(() => /^fsw_server_announcements 0$/m.test(server?.metrics() ?? ''), { timeout: 10_000 })
      .toBe(true);
    await upload(http, bytesOf(4000, 35));
    await server?.evict();
    expect(await onDisk({ p })).toEqual([]);
  });

  it('counts an existing store on startup, and evicts it', async () => {
    let { http } = await start({ maxBytes: 1_000_000, retentionMs: 0 });
    const digests: Record<string, string> = {};
    for (let i = 0; i < 5; i++) digests[`o${i}`] = await upload(http, bytesOf(2000, 40 + i));
    await server?.close();
    client?.close();
    // A restarted server knows an object's last use only from its file's mtime, whose clock ticks every few ms:
    // give the five files one second each, in upload order, so that the LRU order is the upload order.
    const base = Date.now() / 1000 - 100;
    for (const [i, digest] of Object.values(digests).entries()) {
      const hex = digest.slice('blake3:'.length);
      const file = join(dir, 'objects', hex.slice(0, 2), `${hex.slice(2)}.file`);
      await utimes(file, base + i, base + i);
    }
    ({ http } = await start({ maxBytes: 5000, retentionMs: 0 }));
    await server?.ready();
    expect(server?.stats()).toMatchObject({ objects: 5, bytes: 10_000 });
    const result = await server?.evict();
    expect(result?.removed).toBe(3);
    expect(await onDisk(digests)).toEqual(['o3', 'o4']);
  });
});
