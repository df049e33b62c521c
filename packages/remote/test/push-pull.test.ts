import { execFileSync, spawnSync } from 'node:child_process';
import { readdir, readFile, unlink } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RemoteError } from '@fsw/errors';
import { openRemote, pull, push, type Remote, type TransferProgress } from '@fsw/remote';
import { openStore } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeOptions, startFakeGrpc, startFakeHttp } from './helpers/fake-servers.js';
import { putSpec, reachable, type Spec, sampleSpec, tempDir } from './helpers/fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
const open: { close(): Promise<void> }[] = [];

beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  await tmp.cleanup();
});

const stores = () => ({
  local: openStore(join(tmp.dir, 'local')),
  server: openStore(join(tmp.dir, 'server')),
  back: openStore(join(tmp.dir, 'back')),
});

function track<T extends { close(): Promise<void> }>(x: T): T {
  open.push(x);
  return x;
}

async function expectSameObjects(
  a: ReturnType<typeof openStore>,
  b: ReturnType<typeof openStore>,
  root: string,
) {
  const all = await reachable(a, root);
  for (const d of [...all.trees, ...all.files]) {
    expect(Buffer.from(await b.get(d)).equals(Buffer.from(await a.get(d))), d).toBe(true);
  }
  return all;
}

type Kind = 'grpc' | 'http' | 'http-head' | 'file';
async function remoteFor(kind: Kind, serverStore: ReturnType<typeof openStore>, options: FakeOptions = {}) {
  if (kind === 'file') return { fake: undefined, remote: track(openRemote(pathToFileURL(serverStore.dir))) };
  const fake = track(
    kind === 'grpc'
      ? await startFakeGrpc(serverStore, options)
      : await startFakeHttp(serverStore, { ...options, batch: kind === 'http' }),
  );
  return { fake, remote: track(openRemote(fake.url, { token: options.token, retryDelayMs: 5 })) };
}

describe.each<Kind>(['grpc', 'http', 'http-head', 'file'])('push and pull over %s', (kind) => {
  it('round-trips a tree: every object arrives intact, children before the trees naming them', async () => {
    const { local, server, back } = stores();
    const root = await putSpec(local, sampleSpec(1, kind === 'grpc' || kind === 'file'));
    const { fake, remote } = await remoteFor(kind, server);
    const progress: TransferProgress[] = [];
    const pushed = await push(local, remote, root, { onProgress: (p) => progress.push(p) });
    const all = await expectSameObjects(local, server, root);
    expect(pushed.digest).toBe(root);
    expect(pushed.objectsUploaded).toBe(all.trees.length + all.files.length);
    expect(progress.at(-1)).toMatchObject({ phase: 'done', objectsDone: pushed.objectsUploaded });
    if (fake) expect(fake.violations).toEqual([]);

    const pulled = await pull(remote, back, root);
    await expectSameObjects(local, back, root);
    expect(pulled.objectsDownloaded).toBe(all.trees.length + all.files.length);

    // Nothing changed: nothing moves either way.
    expect((await push(local, remote, root)).objectsUploaded).toBe(0);
    expect((await pull(remote, back, root)).objectsDownloaded).toBe(0);
  });

  it('pushes a changed tree by sending only the changed objects', async () => {
    const { local, server } = stores();
    const spec = sampleSpec(2);
    const { remote } = await remoteFor(kind, server);
    await push(local, remote, await putSpec(local, spec));
    const changed = { ...spec, d3: { ...(spec.d3 as object), 'f5.txt': 'changed\n' } };
    const root2 = await putSpec(local, changed);
    const result = await push(local, remote, root2);
    // The new file, its directory and the root.
    expect(result.objectsUploaded).toBe(3);
    await expectSameObjects(local, server, root2);
  });

  it('reports what the remote lacks below a tree, in full digest form', async () => {
    const { local, server } = stores();
    const spec = sampleSpec(8);
    const root = await putSpec(local, spec);
    const { remote } = await remoteFor(kind, server);
    await push(local, remote, root);
    // Take one sub-tree and one file (outside it) away from the remote.
    const subtree = await putSpec(local, spec.d2 as Spec);
    const file = await local.put(Buffer.from('hello world\n'));
    await unlink(server.path(subtree, 'tree'));
    await unlink(server.path(file, 'file'));
    const hex = root.slice('blake3:'.length);
    for (const form of [root, hex]) {
      const answer = await remote.missing([form]);
      expect(answer).toEqual({ trees: [subtree], objects: [file] });
    }
    expect(await remote.hasObjects([root, file, hex])).toEqual([true, false, true]);
  });

  it('refuses corrupted bytes from the remote: E_DIGEST_MISMATCH and nothing stored', async () => {
    if (kind === 'file') return; // a store directory cannot be told to lie; its E_CORRUPT path is the store's own
    const { local, server, back } = stores();
    const root = await putSpec(local, sampleSpec(3));
    const victim = (await reachable(local, root)).files[0]!;
    await push(local, (await remoteFor(kind, server)).remote, root);
    const { remote } = await remoteFor(kind, server, { corrupt: (d) => d === victim });
    const error = await pull(remote, back, root).catch((e: unknown) => e);
    expect(RemoteError.is(error) && error.code).toBe('E_DIGEST_MISMATCH');
    expect(String((error as Error).message)).toContain(victim);
    expect(await back.has(victim)).toBe(false);
  });

  it('resumes an interrupted push, uploading only what is still missing', async () => {
    if (kind === 'file') return; // interruption needs a server that can refuse; the resume logic is shared
    const { local, server } = stores();
    const root = await putSpec(local, sampleSpec(4));
    const all = await reachable(local, root);
    const total = all.trees.length + all.files.length;
    const first = await remoteFor(kind, server, { refuseWritesAfter: 20 });
    // One upload at a time, so that no write is still in flight on the server when the push has failed.
    await expect(push(local, first.remote, root, { concurrency: 1 })).rejects.toSatisfy(RemoteError.is);
    const storedFirst = first.fake!.writes.length;
    expect(storedFirst).toBe(20);
    expect(storedFirst).toBeLessThan(total);
    const second = await remoteFor(kind, server);
    const result = await push(local, second.remote, root);
    expect(result.objectsUploaded).toBe(total - storedFirst);
    expect(second.fake!.writes.length).toBe(total - storedFirst);
    expect([...first.fake!.violations, ...second.fake!.violations]).toEqual([]);
    await expectSameObjects(local, server, root);
  });

  it('retries transient failures (UNAVAILABLE / HTTP 503)', async () => {
    if (kind === 'file') return;
    const { local, server, back } = stores();
    const root = await putSpec(local, sampleSpec(5));
    const { remote } = await remoteFor(kind, server, { failFirst: 3 });
    await push(local, remote, root);
    await pull(remote, back, root);
    await expectSameObjects(local, back, root);
  });

  it('fails with E_UNAUTHENTICATED on a wrong or missing token, and works with the right one', async () => {
    if (kind === 'file') return;
    const { local, server } = stores();
    const root = await putSpec(local, sampleSpec(6));
    const { fake } = await remoteFor(kind, server, { token: 's3cret' });
    for (const token of ['wrong', undefined]) {
      const remote = track(openRemote(fake!.url, { token }));
      await expect(push(local, remote, root)).rejects.toMatchObject({
        name: 'RemoteError',
        code: 'E_UNAUTHENTICATED',
      });
    }
    expect(fake!.writes).toEqual([]);
    const ok = track(openRemote(fake!.url, { token: 's3cret' }));
    await push(local, ok, root);
    await expectSameObjects(local, server, root);
  });
});

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

// A TLS server needs a certificate; it is made with the openssl command, absent on some CI images.
describe.skipIf(!hasOpenssl)('grpcs:// remote', () => {
  it('pushes and pulls over TLS, trusting the given root certificate, and refuses an unknown one', async () => {
    const { local, server, back } = stores();
    const key = join(tmp.dir, 'key.pem');
    const cert = join(tmp.dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const tls = { key: await readFile(key), cert: await readFile(cert) };
    const fake = track(await startFakeGrpc(server, { tls }));
    expect(fake.url).toMatch(/^grpcs:/);
    const root = await putSpec(local, sampleSpec(9, false, 2));
    const untrusted = track(openRemote(fake.url, { retries: 0, timeoutMs: 5_000 }));
    await expect(push(local, untrusted, root)).rejects.toMatchObject({ name: 'RemoteError' });
    const remote = track(openRemote(fake.url, { rootCerts: tls.cert }));
    await push(local, remote, root);
    await pull(remote, back, root);
    await expectSameObjects(local, back, root);
  });
});

describe('file:// remote', () => {
  it('streams a written object to disk, and refuses one that does not match its digest', async () => {
    const { server } = stores();
    const remote = track(openRemote(pathToFileURL(server.dir)));
    const bytes = Buffer.alloc(3 * 1024 * 1024, 5);
    const digest = await openStore(join(tmp.dir, 'scratch')).put(bytes);
    async function* chunks(data: Buffer) {
      for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
    }
    const wrong = Buffer.from(bytes);
    wrong[12345] = 0;
    await expect(remote.write(digest, chunks(wrong))).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    expect(await server.has(digest)).toBe(false);
    await remote.write(digest, () => chunks(bytes));
    expect(Buffer.from(await server.get(digest)).equals(bytes)).toBe(true);
    expect((await readdir(join(server.dir, 'objects'))).filter((n) => n.startsWith('.tmp'))).toEqual([]);
  });
});

describe('pull', () => {
  it('names the object a remote lacks: E_MISSING_OBJECT', async () => {
    const { server, back } = stores();
    const { remote } = await remoteFor('grpc', server);
    const absent = `blake3:${'ab'.repeat(32)}`;
    await expect(pull(remote, back, absent)).rejects.toMatchObject({ code: 'E_MISSING_OBJECT' });
  });

  it('streams an object larger than its in-memory limit to the store, verified', async () => {
    const { local, server, back } = stores();
    const root = await putSpec(local, { 'big.bin': Buffer.alloc(20 * 1024 * 1024, 3), small: 'x' });
    const { remote } = await remoteFor('http', server);
    await push(local, remote, root);
    await pull(remote, back, root);
    await expectSameObjects(local, back, root);
  });

  it('refuses a corrupted large object that was streaming to disk, leaving no temp file', async () => {
    const { local, server, back } = stores();
    const big = Buffer.alloc(12 * 1024 * 1024, 9);
    const root = await putSpec(local, { 'big.bin': big });
    const bigDigest = await local.put(big);
    await push(local, (await remoteFor('grpc', server)).remote, root);
    const { remote } = await remoteFor('grpc', server, { corrupt: (d) => d === bigDigest });
    await expect(pull(remote, back, root)).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    expect(await back.has(bigDigest)).toBe(false);
    const names = await readdir(join(back.dir, 'objects'), { recursive: true });
    expect(names.filter((n) => n.includes('.tmp'))).toEqual([]);
  });

  it('throws signal.reason when cancelled', async () => {
    const { local, server, back } = stores();
    const root = await putSpec(local, sampleSpec(7));
    const { remote } = await remoteFor('grpc', server);
    await push(local, remote, root);
    const controller = new AbortController();
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(pull(remote, back, root, { signal: controller.signal })).rejects.toBe(reason);
  });
});

describe('dead and silent servers', () => {
  const deadPort = async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  };

  it.each(['jolt', 'http'])('a refused %s connection fails fast with E_UNAVAILABLE', async (scheme) => {
    const remote: Remote = track(
      openRemote(`${scheme}://127.0.0.1:${await deadPort()}`, { retryDelayMs: 10 }),
    );
    const started = Date.now();
    const error = await remote.hasObjects([`blake3:${'0'.repeat(64)}`]).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'RemoteError', code: 'E_UNAVAILABLE' });
    // The cause, without grpc-js's empty "Resolution note:" or a doubled "Error: ".
    expect((error as Error).message).toContain('ECONNREFUSED');
    expect((error as Error).message).not.toMatch(/Resolution note|Error: connect/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it.each(['jolt', 'http'])('a closed %s remote refuses further calls with E_UNAVAILABLE', async (scheme) => {
    const { server } = stores();
    const fake = track(scheme === 'jolt' ? await startFakeGrpc(server) : await startFakeHttp(server));
    const remote = openRemote(fake.url);
    const d = `blake3:${'0'.repeat(64)}`;
    expect(await remote.hasObjects([d])).toEqual([false]);
    await remote.close();
    await remote.close();
    await expect(remote.hasObjects([d])).rejects.toMatchObject({ code: 'E_UNAVAILABLE' });
  });

  it.each(['jolt', 'http'])(
    'a %s server that accepts but never answers fails within the timeout',
    async (scheme) => {
      const sockets: net.Socket[] = [];
      const silent = net.createServer((s) => sockets.push(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      const port = (silent.address() as net.AddressInfo).port;
      try {
        const remote = track(openRemote(`${scheme}://127.0.0.1:${port}`, { timeoutMs: 500, retries: 0 }));
        const error = await remote.hasObjects([`blake3:${'0'.repeat(64)}`]).catch((e: unknown) => e);
        expect(RemoteError.is(error)).toBe(true);
        expect(['E_UNAVAILABLE', 'E_TIMEOUT']).toContain((error as RemoteError).code);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => silent.close(() => r()));
      }
    },
  );
});
