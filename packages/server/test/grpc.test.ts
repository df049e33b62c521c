import { connect, type Settings } from 'node:http2';
import { WRITE_BATCH_HEADER } from '@fsw/remote';
import type { CacheServer } from '@fsw/server';
import { encodeTree, type TreeEntry } from '@fsw/tree';
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
let client: CacheClient;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  server = await startServer(dir);
  client = new CacheClient(server.addresses.grpc?.url as string);
});

afterEach(async () => {
  client.close();
  await server.close();
  await cleanup();
});

const hex = (digest: string) => digest.slice('blake3:'.length);

describe('gRPC fstree.CacheService', () => {
  it('writes, checks and reads objects in 64 KiB chunks', async () => {
    const body = bytesOf(200_000, 1);
    const digest = await digestOf(body);
    expect(await client.hasObject([digest])).toEqual([false]);
    await client.writeObject(digest, body, 10_000);
    expect(await client.hasObject([digest, hex(digest), await digestOf('nope')])).toEqual([
      true,
      true,
      false,
    ]);
    const read = await client.readObject(hex(digest));
    expect(read.data.equals(body)).toBe(true);
    expect(Math.max(...read.chunks)).toBeLessThanOrEqual(64 * 1024);
    expect(read.chunks.length).toBe(Math.ceil(body.length / (64 * 1024)));
    expect((await storedObjects(dir)).get(digest)?.equals(body)).toBe(true);
  });

  it('answers ALREADY_EXISTS for an object it has', async () => {
    const digest = await digestOf('twice');
    await client.writeObject(digest, Buffer.from('twice'));
    expect(await grpcCode(client.writeObject(digest, Buffer.from('twice')))).toBe(status.ALREADY_EXISTS);
  });

  it('refuses bytes that do not match the digest with INVALID_ARGUMENT, storing nothing', async () => {
    const digest = await digestOf('real');
    expect(await grpcCode(client.writeObject(digest, Buffer.from('fake')))).toBe(status.INVALID_ARGUMENT);
    const big = await digestOf('big');
    expect(await grpcCode(client.writeObject(big, bytesOf(3_000_000, 2)))).toBe(status.INVALID_ARGUMENT);
    expect(await client.hasObject([digest, big])).toEqual([false, false]);
    expect((await storedObjects(dir)).size).toBe(0);
    expect(await strayFiles(dir)).toEqual([]);
    expect(await grpcCode(client.writeObject('not-a-digest', Buffer.from('x')))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(await grpcCode(client.hasObject(['zz']))).toBe(status.INVALID_ARGUMENT);
  });

  it('takes several objects in one WriteObject stream with the write-batch header it announces', async () => {
    expect((await client.hasObjectHeaders([])).get(WRITE_BATCH_HEADER)).toEqual(['1']);
    const stored = Buffer.from('stored before');
    const big = bytesOf(150_000, 3);
    const small = Buffer.from('small');
    const empty = new Uint8Array(0);
    const [dStored, dBig, dSmall, dEmpty] = await Promise.all([stored, big, small, empty].map(digestOf));
    await client.writeObject(dStored!, stored);
    await client.writeMessages(
      [
        { digest: dBig!, data: big.subarray(0, 65_536) },
        { digest: dBig!, data: big.subarray(65_536, 131_072) },
        { digest: '', data: big.subarray(131_072) },
        { digest: dStored!, data: stored },
        { digest: hex(dSmall!), data: small },
        { digest: dEmpty!, data: empty },
      ],
      { [WRITE_BATCH_HEADER]: '1' },
    );
    const objects = await storedObjects(dir);
    expect(objects.get(dBig!)?.equals(big)).toBe(true);
    expect(objects.get(dSmall!)?.equals(small)).toBe(true);
    expect(objects.get(dEmpty!)?.length).toBe(0);
    expect(objects.size).toBe(4);
    expect(await strayFiles(dir)).toEqual([]);
  });

  it('refuses a corrupted object of a batch (INVALID_ARGUMENT, not stored), and two digests without the header', async () => {
    const good = Buffer.from('good');
    const [dGood, dReal, dAfter] = await Promise.all(['good', 'real', 'after'].map(digestOf));
    const messages = [
      { digest: dGood!, data: good },
      { digest: dReal!, data: Buffer.from('fake') },
      { digest: dAfter!, data: Buffer.from('after') },
    ];
    expect(await grpcCode(client.writeMessages(messages, { [WRITE_BATCH_HEADER]: '1' }))).toBe(
      status.INVALID_ARGUMENT,
    );
    // The object verified before the bad one is stored; nothing of the bad one, nothing after it.
    expect(await client.hasObject([dGood!, dReal!, dAfter!])).toEqual([true, false, false]);
    expect(await strayFiles(dir)).toEqual([]);
    expect(await grpcCode(client.writeMessages([messages[2]!, { digest: dGood!, data: good }]))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(await client.hasObject([dAfter!])).toEqual([false]);
  });

  it('reads several objects in one ReadObject stream with the read-batch header, skipping missing and large ones', async () => {
    const small = Buffer.from('small one');
    const mid = bytesOf(100_000, 4);
    const large = bytesOf(1_500_000, 5);
    const [dSmall, dMid, dLarge, dAbsent] = await Promise.all([small, mid, large, 'absent'].map(digestOf));
    for (const [d, b] of [
      [dSmall, small],
      [dMid, mid],
      [dLarge, large],
    ] as const)
      await client.writeObject(d!, b);
    const messages = await client.readBatch([dMid!, dAbsent!, hex(dSmall!), dLarge!]);
    // Each batched object is one message (our client takes messages of any size), not 64 KiB pieces.
    expect(messages.map((m) => [m.digest ?? '', m.skipped ?? false, m.data.length])).toEqual([
      [dMid, false, 100_000],
      [dAbsent, true, 0],
      [dSmall, false, small.length],
      [dLarge, true, 0],
    ]);
    expect(Buffer.from(messages[0]!.data).equals(mid)).toBe(true);
    // Without the header, the same object comes in the protocol's usual 64 KiB chunks.
    expect((await client.readObject(dMid!)).chunks).toEqual([65_536, 100_000 - 65_536]);
  });

  it('offers uploads HTTP/2 windows wider than the 64 KiB default', async () => {
    const session = connect(String(server.addresses.grpc?.url ?? '').replace('jolt:', 'http:'));
    try {
      const settings = await new Promise<Settings>((resolve) => {
        session.on('remoteSettings', (s) => {
          if (s.initialWindowSize !== 65_535) resolve(s);
        });
      });
      expect(settings.initialWindowSize).toBeGreaterThanOrEqual(1024 * 1024);
      // The connection's window grows with a WINDOW_UPDATE that follows the settings: wait for it (a loaded machine
      // may take longer than a fixed pause), up to 5 s.
      for (let waited = 0; session.state.remoteWindowSize! < 1024 * 1024 && waited < 5000; waited += 10) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(session.state.remoteWindowSize).toBeGreaterThanOrEqual(1024 * 1024);
    } finally {
      session.destroy();
    }
  });

  it('answers NOT_FOUND when reading a missing object', async () => {
    expect(await grpcCode(client.readObject(await digestOf('absent')))).toBe(status.NOT_FOUND);
  });

  it('stores and reads the empty object (one message, empty data)', async () => {
    const digest = await digestOf('');
    await client.writeObject(digest, new Uint8Array(0));
    const read = await client.readObject(digest);
    expect(read.data.length).toBe(0);
    expect(read.chunks).toEqual([0]);
  });

  it('HasTree walks trees recursively and reports missing trees (bare hex) and objects (full digests)', async () => {
    const fileA = Buffer.from('file a\n');
    const fileB = Buffer.from('file b\n');
    const a = await digestOf(fileA);
    const b = await digestOf(fileB);
    const subBytes = encodeTree([
      { name: 'b.txt', digest: b, type: 'file', mode: 0o644 },
      { name: 'link', digest: '', type: 'symlink', mode: 0o777, target: '../a.txt' },
    ] satisfies TreeEntry[]);
    const sub = await digestOf(subBytes);
    const rootBytes = encodeTree([
      { name: 'a.txt', digest: a, type: 'file', mode: 0o644 },
      { name: 'again', digest: a, type: 'file', mode: 0o755 },
      { name: 'sub', digest: sub, type: 'dir', mode: 0o755 },
    ]);
    const root = await digestOf(rootBytes);

    // Nothing there: the root itself is missing. Both digest forms are accepted.
    expect(await client.hasTree([root])).toMatchObject({ missingTrees: [hex(root)], missingObjects: [] });
    expect(await client.hasTree([hex(root)])).toMatchObject({
      missingTrees: [hex(root)],
      missingObjects: [],
    });

    // The reference client's order: the tree first, then what HasTree says is missing below it.
    await client.writeObject(root, rootBytes);
    expect(await client.hasTree([root])).toMatchObject({ missingTrees: [hex(sub)], missingObjects: [a] });
    await client.writeObject(a, fileA);
    await client.writeObject(sub, subBytes);
    expect(await client.hasTree([sub])).toMatchObject({ missingTrees: [], missingObjects: [b] });
    await client.writeObject(b, fileB);
    const done = await client.hasTree([root]);
    expect(done).toEqual({ missingTrees: [], missingObjects: [], messages: 0 });

    // Trees are filed as .tree, files as .file, as fstree's store does.
    const { readdir } = await import('node:fs/promises');
    const names = (await readdir(`${dir}/objects/${hex(root).slice(0, 2)}`)).filter((n) =>
      n.startsWith(hex(root).slice(2)),
    );
    expect(names).toEqual([`${hex(root).slice(2)}.tree`]);
  });

  it('HasTree answers again correctly for trees it found complete before', async () => {
    const file = Buffer.from('shared');
    const f = await digestOf(file);
    const subBytes = encodeTree([{ name: 'f', digest: f, type: 'file', mode: 0o644 }]);
    const sub = await digestOf(subBytes);
    await client.writeObject(f, file);
    await client.writeObject(sub, subBytes);
    expect(await client.hasTree([sub])).toMatchObject({ missingTrees: [], missingObjects: [] });
    // A new root over the complete subtree and a new file: only the new file is missing.
    const fresh = await digestOf('fresh');
    const rootBytes = encodeTree([
      { name: 'new', digest: fresh, type: 'file', mode: 0o644 },
      { name: 'old', digest: sub, type: 'dir', mode: 0o755 },
      { name: 'same', digest: f, type: 'file', mode: 0o644 },
    ]);
    const root = await digestOf(rootBytes);
    await client.writeObject(root, rootBytes);
    expect(await client.hasTree([root])).toMatchObject({ missingTrees: [], missingObjects: [fresh] });
    expect(await client.hasTree([root])).toMatchObject({ missingTrees: [], missingObjects: [fresh] });
    await client.writeObject(fresh, Buffer.from('fresh'));
    expect(await client.hasTree([root])).toMatchObject({ missingTrees: [], missingObjects: [] });
    expect(await client.hasTree([root, sub])).toMatchObject({ missingTrees: [], missingObjects: [] });
  });

  it('HasTree refuses a directory entry naming an object that is not a tree', async () => {
    const notTree = Buffer.from('plain file');
    const digest = await digestOf(notTree);
    await client.writeObject(digest, notTree);
    const rootBytes = encodeTree([{ name: 'd', digest, type: 'dir', mode: 0o755 }]);
    const root = await digestOf(rootBytes);
    await client.writeObject(root, rootBytes);
    expect(await grpcCode(client.hasTree([root]))).toBe(status.INVALID_ARGUMENT);
  });

  it('HasTree streams large answers in several messages', async () => {
    const entries: TreeEntry[] = [];
    for (let i = 0; i < 3000; i++) {
      entries.push({
        name: `f${String(i).padStart(5, '0')}`,
        digest: await digestOf(`file ${i}`),
        type: 'file',
        mode: 0o644,
      });
    }
    const rootBytes = encodeTree(entries);
    const root = await digestOf(rootBytes);
    await client.writeObject(root, rootBytes);
    const answer = await client.hasTree([root]);
    expect(answer.missingObjects.length).toBe(3000);
    expect(new Set(answer.missingObjects)).toEqual(new Set(entries.map((e) => e.digest)));
    expect(answer.messages).toBeGreaterThan(1);
  });
});
