import { execFileSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openRemote, pull, push } from '@fsw/remote';
import { type CacheServer, createServer } from '@fsw/server';
import { openStore, writeTree } from '@fsw/tree';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { putSpec, reachable, type Spec, sampleSpec, tempDir } from './helpers/fixtures.js';

// Round trips against the real cache server (@fsw/server), on 127.0.0.1 with OS-picked ports.
// The vectors script (kept once, in the tree package's fixtures) is a verbatim copy of shared/fixtures/fstree-vectors.sh; the digests were produced by fstree.
const SCRIPT = resolve(import.meta.dirname, '../../tree/test/fixtures/fstree-vectors.sh');
const BASIC = 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9';
const IGNORE = 'blake3:99af46374945808eec71de1df182d48c065bce036b93627d75a7343b8e7bbe55';

let tmp: { dir: string; cleanup: () => Promise<void> };
let local: ReturnType<typeof openStore>;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  tmp = await tempDir('fsw-remote-server-');
  execFileSync('bash', [SCRIPT, join(tmp.dir, 'vectors')]);
  local = openStore(join(tmp.dir, 'local'));
  expect(await writeTree(join(tmp.dir, 'vectors/basic'), { store: local, index: false })).toBe(BASIC);
  expect(await writeTree(join(tmp.dir, 'vectors/ignore'), { store: local, index: false })).toBe(IGNORE);
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});
afterAll(async () => {
  await tmp.cleanup();
});

let serial = 0;
async function startServer(
  options: { token?: string; dir?: string; onRequest?: (r: { method: string; target: string }) => void } = {},
): Promise<CacheServer> {
  const server = await createServer({
    dir: options.dir ?? join(tmp.dir, `server-${++serial}`),
    grpc: { port: 0 },
    http: { port: 0 },
    token: options.token,
    onRequest: options.onRequest,
  });
  closers.push(() => server.close({ graceMs: 0 }));
  return server;
}

function urlFor(server: CacheServer, kind: 'grpc' | 'http' | 'file'): string {
  if (kind === 'file') return pathToFileURL(server.dir).href;
  return kind === 'grpc' ? server.addresses.grpc!.url : server.addresses.http!.url;
}

function remoteAt(url: string, options: Parameters<typeof openRemote>[1] = {}) {
  const remote = openRemote(url, { retryDelayMs: 10, ...options });
  closers.push(() => remote.close());
  return remote;
}

/** Every reachable object of `root` in `store` re-hashes to its digest and equals the local copy. */
async function expectComplete(storeDir: string, root: string) {
  const verifying = openStore(storeDir, { verify: true });
  const all = await reachable(verifying, root);
  for (const d of [...all.trees, ...all.files]) {
    expect(Buffer.from(await verifying.get(d)).equals(Buffer.from(await local.get(d))), d).toBe(true);
  }
  return all.trees.length + all.files.length;
}

describe.each(['grpc', 'http', 'file'] as const)('with @fsw/server over %s', (kind) => {
  it('pushes and pulls the fstree test vectors byte for byte', async () => {
    for (const root of [BASIC, IGNORE]) {
      const server = await startServer();
      const remote = remoteAt(urlFor(server, kind));
      const pushed = await push(local, remote, root);
      expect(pushed.objectsUploaded).toBe(await expectComplete(server.dir, root));
      const back = openStore(join(tmp.dir, `back-${kind}-${root.slice(7, 15)}`));
      const pulled = await pull(remote, back, root);
      expect(pulled.objectsDownloaded).toBe(pushed.objectsUploaded);
      const all = await reachable(back, root);
      for (const d of [...all.trees, ...all.files]) {
        expect(Buffer.from(await back.get(d)).equals(Buffer.from(await local.get(d)))).toBe(true);
      }
      expect((await push(local, remote, root)).objectsUploaded).toBe(0);
    }
  });
});

describe('with @fsw/server', () => {
  it('pushes and pulls over gRPC several objects per call (the extensions the server announces)', async () => {
    let writes = 0;
    let reads = 0;
    const server = await startServer({
      onRequest: (r) => {
        if (r.method === 'WriteObject') writes++;
        if (r.method === 'ReadObject') reads++;
      },
    });
    const remote = remoteAt(urlFor(server, 'grpc'));
    const folder = join(tmp.dir, 'many');
    for (let i = 0; i < 40; i++) {
      await mkdir(join(folder, `d${i % 2}`), { recursive: true });
      await writeFile(join(folder, `d${i % 2}`, `f${i}`), `file ${i}\n`);
    }
    // Larger than a batch takes: uploaded on its own.
    await writeFile(join(folder, 'big'), Buffer.alloc(1536 * 1024, 7));
    const root = await writeTree(folder, { store: local, index: false });
    const pushed = await push(local, remote, root);
    expect(pushed.objectsUploaded).toBe(44);
    expect(await expectComplete(server.dir, root)).toBe(44);
    // One stream for the 40 small files, one for the big one, one per height of trees (2).
    expect(writes).toBe(4);
    // Objects the server already holds are skipped inside a batch.
    const rootBytes = await local.get(root);
    await remote.writeMany?.([
      { digest: root, bytes: rootBytes },
      { digest: root, bytes: rootBytes },
    ]);
    expect(writes).toBe(5);
    expect(await expectComplete(server.dir, root)).toBe(44);

    const back = openStore(join(tmp.dir, 'back-batched'));
    const pulled = await pull(remote, back, root);
    expect(pulled.objectsDownloaded).toBe(44);
    for (const d of [...(await reachable(back, root)).files]) {
      expect(Buffer.from(await back.get(d)).equals(Buffer.from(await local.get(d)))).toBe(true);
    }
    // The root alone (it teaches the client the extension), its two subtrees in one stream, the 41 files in one
    // stream (the big one skipped there), the big one alone.
    expect(reads).toBe(4);
  });

  it('pushes over HTTP several objects per POST /objects?write once the server announced it', async () => {
    const targets: string[] = [];
    const server = await startServer({
      onRequest: (r) => targets.push(`${r.method} ${r.target}`),
    });
    const remote = remoteAt(urlFor(server, 'http'));
    expect(remote.batchWrites).toBe(false);
    const folder = join(tmp.dir, 'many-http');
    for (let i = 0; i < 30; i++) {
      await mkdir(join(folder, `d${i % 3}`), { recursive: true });
      await writeFile(join(folder, `d${i % 3}`, `f${i}`), `http file ${i}\n`);
    }
    const root = await writeTree(folder, { store: local, index: false });
    const pushed = await push(local, remote, root);
    expect(pushed.objectsUploaded).toBe(34);
    expect(remote.batchWrites).toBe(true);
    expect(await expectComplete(server.dir, root)).toBe(34);
    // No PUT at all: the 30 files in one POST, then one per height of trees (2).
    expect(targets.filter((t) => t.startsWith('PUT'))).toEqual([]);
    expect(targets.filter((t) => t.startsWith('POST /objects?write'))).toHaveLength(3);

    // Bytes that do not match their digest are refused; the object before them in the batch is stored.
    const good = Buffer.from('a good object\n');
    const goodDigest = await openStore(join(tmp.dir, 'scratch-http')).put(good);
    const other = await openStore(join(tmp.dir, 'scratch-http')).put(Buffer.from('another object\n'));
    await expect(
      remote.writeMany!([
        { digest: goodDigest, bytes: good },
        { digest: other, bytes: Buffer.from('not those bytes') },
      ]),
    ).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    const serverStore = openStore(server.dir);
    expect(await serverStore.has(goodDigest)).toBe(true);
    expect(await serverStore.has(other)).toBe(false);
  });

  it('refuses a corrupted object of a batched read: E_DIGEST_MISMATCH, not stored', async () => {
    const server = await startServer();
    const remote = remoteAt(urlFor(server, 'grpc'));
    const folder = join(tmp.dir, 'few');
    for (let i = 0; i < 4; i++) {
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, `f${i}`), `few ${i}\n`);
    }
    const root = await writeTree(folder, { store: local, index: false });
    await push(local, remote, root);
    const files = (await reachable(local, root)).files;
    const victim = files[2]!;
    const path = openStore(server.dir).path(victim, 'file');
    await writeFile(path, 'not the bytes');
    const back = openStore(join(tmp.dir, 'back-corrupt'));
    await expect(pull(remote, back, root)).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    expect(await back.has(victim)).toBe(false);
    // A store without the batched put (one putVerified per object) refuses it the same way.
    const plain = openStore(join(tmp.dir, 'back-corrupt-plain'));
    const oneByOne = { ...plain, putManyVerified: undefined };
    await expect(pull(remote, oneByOne, root)).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    expect(await plain.has(victim)).toBe(false);
    // Repaired on the server, both pulls complete: the objects verified before the failure were kept.
    await writeFile(path, await local.get(victim));
    for (const store of [back, oneByOne]) {
      const again = await pull(remote, store, root);
      expect(again.objectsDownloaded + again.objectsPresent).toBe(files.length + 1);
      expect(Buffer.from(await store.get(victim)).equals(Buffer.from(await local.get(victim)))).toBe(true);
    }
  });

  it("speaks the fstree C++ client's HTTP layout (<base>/bl/ake3:X/<rest>, HEAD per object)", async () => {
    const server = await startServer();
    const remote = remoteAt(urlFor(server, 'http'), { httpLayout: 'fstree' });
    const pushed = await push(local, remote, BASIC);
    expect(pushed.objectsUploaded).toBe(await expectComplete(server.dir, BASIC));
    const back = openStore(join(tmp.dir, 'back-fstree-layout'));
    expect((await pull(remote, back, BASIC)).objectsDownloaded).toBe(pushed.objectsUploaded);
    expect(await remote.hasObjects([BASIC, `blake3:${'1'.repeat(64)}`])).toEqual([true, false]);
  });

  it.each(['grpc', 'http'] as const)(
    'refuses a wrong or missing token over %s, accepts the right one',
    async (kind) => {
      const server = await startServer({ token: 'tok3n' });
      for (const token of ['nope', undefined]) {
        await expect(push(local, remoteAt(urlFor(server, kind), { token }), BASIC)).rejects.toMatchObject({
          name: 'RemoteError',
          code: 'E_UNAUTHENTICATED',
        });
      }
      expect(server.stats().objects).toBe(0);
      await push(local, remoteAt(urlFor(server, kind), { token: 'tok3n' }), BASIC);
      await expectComplete(server.dir, BASIC);
    },
  );

  it('completes a push cut short by the server going down, once it is back, with only verified objects', async () => {
    const dir = join(tmp.dir, 'restart');
    const spec: Record<string, Spec> = { base: sampleSpec(11) };
    for (let i = 0; i < 3; i++) spec[`more${i}`] = sampleSpec(100 + i);
    const root = await putSpec(local, spec);
    const first = await startServer({ dir });
    let killed: Promise<void> | undefined;
    const direct = remoteAt(first.addresses.grpc!.url, { retries: 1, concurrency: 4 });
    // Once the kill is under way, every further call waits until the server is down: the push cannot outrun the
    // close and finish (it did, now and then, on a loaded machine).
    const remote = new Proxy(direct, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== 'function' || key === 'close') return value;
        return async (...args: unknown[]) => {
          if (killed !== undefined) await killed;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const error = await push(local, remote, root, {
      concurrency: 4,
      onProgress: (p) => {
        if (killed === undefined && p.objectsDone >= 30) killed = first.close({ graceMs: 0 });
      },
    }).catch((e: unknown) => e);
    await killed;
    expect(error).toMatchObject({ name: 'RemoteError' });
    expect(['E_UNAVAILABLE', 'E_TIMEOUT'], String(error)).toContain((error as { code: string }).code);

    const second = await startServer({ dir });
    const again = await push(local, remoteAt(second.addresses.grpc!.url), root);
    const total = await expectComplete(dir, root);
    expect(again.objectsUploaded).toBeGreaterThan(0);
    expect(again.objectsUploaded).toBeLessThan(total);
    // No half-written objects or temp files left in the store.
    const leftovers = (await readdir(join(dir, 'objects'), { recursive: true })).filter((n) =>
      n.includes('.tmp'),
    );
    expect(leftovers).toEqual([]);
  });

  it('takes eight clients pushing overlapping trees at once', async () => {
    const server = await startServer();
    const shared = sampleSpec(21, false, 3);
    const roots = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const store = openStore(join(tmp.dir, `client-${i}`));
        const root = await putSpec(store, {
          shared,
          own: sampleSpec(200 + i, false, 1),
          [`n${i}`]: `client ${i}\n`,
        });
        await putSpec(local, { shared, own: sampleSpec(200 + i, false, 1), [`n${i}`]: `client ${i}\n` });
        return { store, root };
      }),
    );
    await Promise.all(
      roots.map(({ store, root }, i) =>
        push(store, remoteAt(urlFor(server, i % 2 === 0 ? 'grpc' : 'http')), root, { concurrency: 4 }),
      ),
    );
    for (const { root } of roots) await expectComplete(server.dir, root);
  });
});
