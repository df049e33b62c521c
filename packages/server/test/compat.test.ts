import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CACHE_SERVICE_PROTO } from '@fsw/remote';
import type { CacheServer } from '@fsw/server';
import { checkout, hashTree, openStore, readTree, type Store, writeTree } from '@fsw/tree';
import {
  type Client,
  type ClientReadableStream,
  type ClientWritableStream,
  credentials,
  loadPackageDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, storedObjects, tempDir } from './helpers.js';

// The fstree test vectors (one copy of shared/fixtures/fstree-vectors.sh, kept in the tree package's fixtures).
const SCRIPT = resolve(import.meta.dirname, '../../tree/test/fixtures/fstree-vectors.sh');
const VECTORS = {
  basic: 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9',
  ignore: 'blake3:99af46374945808eec71de1df182d48c065bce036b93627d75a7343b8e7bbe55',
} as const;

let dir: string;
let cleanup: () => Promise<void>;
let local: Store;
let server: CacheServer;
let fstree: FstreeGrpcClient;

/**
 * A client built by protobufjs from the .proto text (through @grpc/proto-loader), with snake_case field names as
 * fstree's C++ client has them: an implementation of the protocol independent of our hand-written codec.
 */
interface FstreeGrpcClient extends Client {
  HasObject(req: { digest: string[] }, cb: (e: ServiceError | null, r: { present: boolean[] }) => void): void;
  HasTree(req: {
    digest: string[];
  }): ClientReadableStream<{ missing_trees: string[]; missing_objects: string[] }>;
  ReadObject(req: { digest: string }): ClientReadableStream<{ data: Buffer }>;
  WriteObject(cb: (e: ServiceError | null) => void): ClientWritableStream<{ digest: string; data: Buffer }>;
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  execFileSync('bash', [SCRIPT, join(dir, 'vectors')]);
  local = openStore(join(dir, 'local'));
  for (const name of Object.keys(VECTORS) as (keyof typeof VECTORS)[]) {
    expect(await writeTree(join(dir, 'vectors', name), { store: local, index: false })).toBe(VECTORS[name]);
  }
  server = await startServer(join(dir, 'server'));
  const protoFile = join(dir, 'fstree.proto');
  await writeFile(protoFile, CACHE_SERVICE_PROTO);
  const loaded = loadPackageDefinition(
    loadSync(protoFile, { keepCase: true, defaults: true }),
  ) as unknown as {
    fstree: {
      CacheService: new (
        address: string,
        creds: ReturnType<typeof credentials.createInsecure>,
      ) => FstreeGrpcClient;
    };
  };
  fstree = new loaded.fstree.CacheService(
    String(server.addresses.grpc?.url).replace('jolt://', ''),
    credentials.createInsecure(),
  );
});

afterAll(async () => {
  fstree?.close();
  await server?.close();
  await cleanup?.();
});

async function hasTree(digests: string[]) {
  const trees: string[] = [];
  const objects: string[] = [];
  for await (const m of fstree.HasTree({ digest: digests })) {
    trees.push(...m.missing_trees);
    objects.push(...m.missing_objects);
  }
  return { trees, objects };
}

function writeObject(digest: string, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = fstree.WriteObject((e) => (e && e.code !== 6 /* ALREADY_EXISTS */ ? reject(e) : resolve()));
    let offset = 0;
    do {
      call.write({ digest, data: Buffer.from(bytes.subarray(offset, offset + 64 * 1024)) });
      offset += 64 * 1024;
    } while (offset < bytes.byteLength);
    call.end();
  });
}

async function readObject(digest: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const m of fstree.ReadObject({ digest })) parts.push(m.data);
  return Buffer.concat(parts);
}

/** Pulls a tree into a fresh store with `read`, checks it out, and returns the digest of the checked-out folder. */
async function pullAndCheckout(root: string, name: string, read: (digest: string) => Promise<Buffer>) {
  const store = openStore(join(dir, `pulled-${name}`));
  const fetchTree = async (digest: string): Promise<void> => {
    await store.putVerified(digest, await read(digest), 'tree');
    for (const entry of await readTree(digest, { store })) {
      if (entry.type === 'dir') await fetchTree(entry.digest);
      else if (entry.type === 'file' && !(await store.has(entry.digest))) {
        await store.putVerified(entry.digest, await read(entry.digest));
      }
    }
  };
  await fetchTree(root);
  const out = join(dir, `checkout-${name}`);
  await checkout(root, out, { store });
  return hashTree(out);
}

describe('fstree wire compatibility (test vectors)', () => {
  it('an fstree-style gRPC client pushes with HasTree rounds and pulls back the same tree', async () => {
    const root = VECTORS.basic;
    let rounds = 0;
    let ask: string[] = [root];
    while (ask.length > 0) {
      rounds++;
      const missing = await hasTree(ask);
      // The reference client's order: missing trees first (then ask about them), missing objects as reported.
      for (const d of missing.objects) await writeObject(d, await local.get(d));
      const trees = missing.trees.map((hex) => (hex.includes(':') ? hex : `blake3:${hex}`));
      for (const d of trees) await writeObject(d, await local.get(d));
      ask = trees;
    }
    expect(rounds).toBeGreaterThanOrEqual(3);
    expect(await hasTree([root])).toEqual({ trees: [], objects: [] });

    const present = await new Promise<boolean[]>((resolve, reject) =>
      fstree.HasObject({ digest: [root, root.slice(7), `blake3:${'0'.repeat(64)}`] }, (e, r) =>
        e ? reject(e) : resolve(r.present),
      ),
    );
    expect(present).toEqual([true, true, false]);
    expect(await pullAndCheckout(root, 'grpc', readObject)).toBe(root);
  });

  it('an fstree-style HTTP client pushes with HEAD/PUT on <base>/bl/ake3:X/:<hex> and pulls with GET', async () => {
    const root = VECTORS.ignore;
    const base = `${server.addresses.http?.url}/fstree`;
    // The real client's split of the digest string: s[0:2] / s[2:8] / s[6:].
    const at = (d: string) => `${base}/${d.slice(0, 2)}/${d.slice(2, 8)}/${d.slice(6)}`;
    const pushed: string[] = [];
    const push = async (digest: string, kind: 'file' | 'tree'): Promise<void> => {
      if (kind === 'tree')
        for (const e of await readTree(digest, { store: local })) {
          if (e.type !== 'symlink') await push(e.digest, e.type === 'dir' ? 'tree' : 'file');
        }
      if ((await fetch(at(digest), { method: 'HEAD' })).status === 200) return;
      const res = await fetch(at(digest), { method: 'PUT', body: (await local.get(digest)) as BodyInit });
      expect(res.status).toBe(201);
      pushed.push(digest);
    };
    await push(root, 'tree');
    expect(pushed).toContain(root);
    const onServer = await storedObjects(join(dir, 'server'));
    for (const d of pushed) expect(onServer.has(d)).toBe(true);

    const get = async (digest: string) => {
      const res = await fetch(at(digest));
      expect(res.status).toBe(200);
      return Buffer.from(await res.arrayBuffer());
    };
    expect(await pullAndCheckout(root, 'http', get)).toBe(root);
  });
});
