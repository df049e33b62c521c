import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  cacheServiceDefinition,
  decodeBatchAnswer,
  digestFromFstreeClientPath,
  digestFromObjectPath,
  normalizeDigest,
} from '@fsw/remote';
import { decodeTree, type ObjectKind, type Store } from '@fsw/tree';
import * as grpc from '@grpc/grpc-js';

/**
 * Small stand-ins for a cache server, with knobs to misbehave (corrupt reads, transient failures, refusing writes),
 * so the client's error paths can be driven deterministically. The real server (@fsw/server) is tested elsewhere.
 */
export interface FakeOptions {
  readonly token?: string;
  /** Flip a byte of every object read whose digest this returns true for. */
  readonly corrupt?: (digest: string) => boolean;
  /** Answer the first N calls (of any kind) with UNAVAILABLE / HTTP 503. */
  readonly failFirst?: number;
  /** After N successful writes, refuse every further write with a non-retryable error. */
  readonly refuseWritesAfter?: number;
  /** HTTP only: offer the batch query. @default true */
  readonly batch?: boolean;
  /** gRPC only: serve TLS with this PEM key and certificate. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
}

export interface Fake {
  readonly url: string;
  readonly port: number;
  /** Digests written, in order. */
  readonly writes: string[];
  /** Trees written while one of their children was absent (must stay empty). */
  readonly violations: string[];
  /** Calls by name (rpc or HTTP method). */
  readonly calls: Record<string, number>;
  close(): Promise<void>;
}

function kindOf(bytes: Uint8Array): ObjectKind {
  if (bytes.length < 4 || bytes[0] !== 0xee || bytes[1] !== 0x3e) return 'file';
  try {
    decodeTree(bytes);
    return 'tree';
  } catch {
    return 'file';
  }
}

/** Stores an object as a server must: verified, and noting a tree whose children are not all there yet. */
async function accept(
  store: Store,
  digest: string,
  bytes: Uint8Array,
  fake: Fake,
): Promise<'stored' | 'exists'> {
  if (await store.has(digest)) return 'exists';
  const kind = kindOf(bytes);
  if (kind === 'tree') {
    for (const e of decodeTree(bytes)) {
      if (e.type !== 'symlink' && !(await store.has(e.digest))) fake.violations.push(digest);
    }
  }
  await store.putVerified(digest, bytes, kind);
  fake.writes.push(digest);
  return 'stored';
}

async function readMaybeCorrupt(store: Store, digest: string, options: FakeOptions): Promise<Uint8Array> {
  const bytes = Buffer.from(await store.get(digest));
  if (options.corrupt?.(digest)) {
    if (bytes.length === 0) return Buffer.from('x');
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
  }
  return bytes;
}

/** HasTree as the reference server answers it: missing trees as bare hex, missing objects as full digests. */
async function hasTree(
  store: Store,
  root: string,
): Promise<{ missingTrees: string[]; missingObjects: string[] }> {
  const missingTrees: string[] = [];
  const missingObjects: string[] = [];
  const seen = new Set<string>();
  const visit = async (d: string) => {
    if (seen.has(d)) return;
    seen.add(d);
    if (!(await store.has(d))) {
      missingTrees.push(d.slice(d.indexOf(':') + 1));
      return;
    }
    for (const e of decodeTree(await store.get(d))) {
      if (e.type === 'dir') await visit(e.digest);
      else if (e.type === 'file' && !seen.has(e.digest)) {
        seen.add(e.digest);
        if (!(await store.has(e.digest))) missingObjects.push(e.digest);
      }
    }
  };
  await visit(normalizeDigest(root));
  return { missingTrees, missingObjects };
}

export async function startFakeGrpc(store: Store, options: FakeOptions = {}): Promise<Fake> {
  const server = new grpc.Server();
  let failures = options.failFirst ?? 0;
  const fake: Fake = {
    url: '',
    port: 0,
    writes: [],
    violations: [],
    calls: {},
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  const gate = (name: string, md: grpc.Metadata): grpc.ServiceError | undefined => {
    fake.calls[name] = (fake.calls[name] ?? 0) + 1;
    const err = (code: grpc.status, details: string) =>
      Object.assign(new Error(details), {
        code,
        details,
        metadata: new grpc.Metadata(),
      }) as grpc.ServiceError;
    if (options.token !== undefined && md.get('authorization')[0] !== `Bearer ${options.token}`) {
      return err(grpc.status.UNAUTHENTICATED, 'bad or missing token');
    }
    if (failures > 0) {
      failures--;
      return err(grpc.status.UNAVAILABLE, 'try again');
    }
    return undefined;
  };
  server.addService(cacheServiceDefinition, {
    HasObject: (
      call: grpc.ServerUnaryCall<{ digest: string[] }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const e = gate('HasObject', call.metadata);
      if (e) return cb(e);
      store.hasMany(call.request.digest).then((present) => cb(null, { present }), cb);
    },
    HasTree: async (call: grpc.ServerWritableStream<{ digest: string[] }, unknown>) => {
      const e = gate('HasTree', call.metadata);
      if (e) return void call.emit('error', e);
      for (const d of call.request.digest) call.write(await hasTree(store, d));
      call.end();
    },
    ReadObject: async (call: grpc.ServerWritableStream<{ digest: string }, unknown>) => {
      const e = gate('ReadObject', call.metadata);
      if (e) return void call.emit('error', e);
      const d = normalizeDigest(call.request.digest);
      if (!(await store.has(d))) {
        return void call.emit('error', { code: grpc.status.NOT_FOUND, details: 'not found' });
      }
      const bytes = await readMaybeCorrupt(store, d, options);
      for (let i = 0; i < bytes.length; i += 65536) call.write({ data: bytes.subarray(i, i + 65536) });
      call.end();
    },
    WriteObject: (
      call: grpc.ServerReadableStream<{ digest: string; data: Uint8Array }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const e = gate('WriteObject', call.metadata);
      if (e) return cb(e);
      let digest = '';
      const parts: Buffer[] = [];
      call.on('data', (m: { digest: string; data: Uint8Array }) => {
        digest ||= m.digest;
        parts.push(Buffer.from(m.data));
      });
      call.on('end', () => {
        if (options.refuseWritesAfter !== undefined && fake.writes.length >= options.refuseWritesAfter) {
          return cb({ code: grpc.status.FAILED_PRECONDITION, details: 'no more writes' });
        }
        accept(store, normalizeDigest(digest), Buffer.concat(parts), fake).then(
          (r) =>
            r === 'exists' ? cb({ code: grpc.status.ALREADY_EXISTS, details: 'exists' }) : cb(null, {}),
          (error: Error) => cb({ code: grpc.status.INVALID_ARGUMENT, details: error.message }),
        );
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      options.tls
        ? grpc.ServerCredentials.createSsl(null, [
            { private_key: options.tls.key, cert_chain: options.tls.cert },
          ])
        : grpc.ServerCredentials.createInsecure(),
      (e, p) => (e ? reject(e) : resolve(p)),
    ),
  );
  const url = options.tls ? `grpcs://localhost:${port}` : `jolt://127.0.0.1:${port}`;
  return Object.assign(fake, { url, port });
}

export async function startFakeHttp(store: Store, options: FakeOptions = {}): Promise<Fake> {
  let failures = options.failFirst ?? 0;
  const fake: Fake = {
    url: '',
    port: 0,
    writes: [],
    violations: [],
    calls: {},
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server = http.createServer(async (req, res) => {
    const method = req.method ?? 'GET';
    fake.calls[method] = (fake.calls[method] ?? 0) + 1;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const end = (status: number, text = '') => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(method === 'HEAD' ? undefined : text);
    };
    if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`)
      return end(401, 'no');
    if (failures > 0) {
      failures--;
      return end(503, 'busy');
    }
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/objects' && method === 'POST') {
      if (options.batch === false) return end(404);
      const which = url.searchParams.has('present') ? 'present' : 'missing';
      const digests = decodeBatchAnswer(body.toString(), which).map((d) => normalizeDigest(d));
      const present = await store.hasMany(digests);
      const blobs = digests.filter((_, i) => (which === 'present' ? present[i] : !present[i]));
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ blobs }));
    }
    const digest = digestFromObjectPath(url.pathname) ?? digestFromFstreeClientPath(url.pathname);
    if (digest === undefined) return end(404);
    if (method === 'HEAD') return end((await store.has(digest)) ? 200 : 404);
    if (method === 'GET') {
      if (!(await store.has(digest))) return end(404, 'not found');
      const bytes = await readMaybeCorrupt(store, digest, options);
      res.writeHead(200, { 'content-length': bytes.length });
      return res.end(bytes);
    }
    if (method === 'PUT') {
      if (options.refuseWritesAfter !== undefined && fake.writes.length >= options.refuseWritesAfter) {
        return end(418, 'no more writes');
      }
      try {
        const r = await accept(store, digest, body, fake);
        return end(r === 'exists' ? 200 : 201);
      } catch (error) {
        return end(400, (error as Error).message);
      }
    }
    end(405);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(fake, { url: `http://127.0.0.1:${port}`, port });
}
