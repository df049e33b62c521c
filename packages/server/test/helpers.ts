import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashBytes } from '@fsw/hash';
import { cacheServiceDefinition, READ_BATCH_HEADER } from '@fsw/remote';
import { type CacheServer, type CreateServerOptions, createServer } from '@fsw/server';
import {
  type Client,
  type ClientReadableStream,
  type ClientWritableStream,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';

/** A fresh temp dir, removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fsw-server-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Starts a server on 127.0.0.1, OS-chosen ports, in `dir`. */
export function startServer(dir: string, options: CreateServerOptions = {}): Promise<CacheServer> {
  return createServer({ dir, grpc: { port: 0 }, http: { port: 0 }, ...options });
}

/** `blake3:<hex>` of the bytes. */
export async function digestOf(bytes: Uint8Array | string): Promise<string> {
  return `blake3:${await hashBytes(bytes)}`;
}

/** Deterministic pseudo-random bytes. */
export function bytesOf(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Every object file in a store directory: digest -> bytes (temp files excluded). */
export async function storedObjects(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const objects = join(dir, 'objects');
  let prefixes: string[] = [];
  try {
    prefixes = await readdir(objects);
  } catch {
    return out;
  }
  for (const prefix of prefixes) {
    for (const name of await readdir(join(objects, prefix))) {
      const match = /^([0-9a-f]+)\.(file|tree)$/.exec(name);
      if (!match) continue;
      out.set(`blake3:${prefix}${match[1]}`, await readFile(join(objects, prefix, name)));
    }
  }
  return out;
}

/** Every file name in the store directory that is not a finished object (temp files and the like). */
export async function strayFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string, rel: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(at, e.name);
      const relative = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path, relative);
      else if (!/^objects\/[0-9a-f]{2}\/[0-9a-f]+\.(file|tree)$/.test(relative)) out.push(relative);
    }
  };
  await walk(dir, '');
  return out;
}

type Callback = (err: ServiceError | null, res: never) => void;
interface RawClient extends Client {
  HasObject(request: { digest: string[] }, metadata: Metadata, callback: Callback): void;
  HasTree(request: { digest: string[] }, metadata: Metadata): unknown;
  ReadObject(request: { digest: string }, metadata: Metadata): unknown;
  WriteObject(metadata: Metadata, callback: Callback): unknown;
}

/** A raw grpc-js client of `fstree.CacheService`, with promise helpers. */
export class CacheClient {
  readonly client: RawClient;
  readonly metadata: Metadata;

  constructor(address: string, token?: string) {
    const Ctor = makeGenericClientConstructor(cacheServiceDefinition, 'CacheService');
    this.client = new Ctor(address.replace(/^jolt:\/\//, ''), credentials.createInsecure()) as never;
    this.metadata = new Metadata();
    if (token !== undefined) this.metadata.set('authorization', `Bearer ${token}`);
  }

  hasObject(digests: string[]): Promise<boolean[]> {
    return new Promise((resolve, reject) => {
      this.client.HasObject(
        { digest: digests },
        this.metadata,
        (err: ServiceError | null, res: { present: boolean[] }) => (err ? reject(err) : resolve(res.present)),
      );
    });
  }

  async hasTree(
    digests: string[],
  ): Promise<{ missingTrees: string[]; missingObjects: string[]; messages: number }> {
    const call = this.client.HasTree({ digest: digests }, this.metadata) as ClientReadableStream<{
      missingTrees: string[];
      missingObjects: string[];
    }>;
    const out = { missingTrees: [] as string[], missingObjects: [] as string[], messages: 0 };
    for await (const m of call) {
      out.messages++;
      out.missingTrees.push(...m.missingTrees);
      out.missingObjects.push(...m.missingObjects);
    }
    return out;
  }

  async readObject(digest: string): Promise<{ data: Buffer; chunks: number[] }> {
    const call = this.client.ReadObject({ digest }, this.metadata) as ClientReadableStream<{
      data: Uint8Array;
    }>;
    const parts: Buffer[] = [];
    const chunks: number[] = [];
    for await (const m of call) {
      parts.push(Buffer.from(m.data));
      chunks.push(m.data.byteLength);
    }
    return { data: Buffer.concat(parts), chunks };
  }

  /** Uploads `bytes` in `chunk`-sized messages (at least one message), each naming the digest. */
  writeObject(digest: string, bytes: Uint8Array, chunk = 64 * 1024): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.client.WriteObject(this.metadata, (err: ServiceError | null) =>
        err ? reject(err) : resolve(),
      ) as ClientWritableStream<{ digest: string; data: Uint8Array }>;
      let offset = 0;
      do {
        call.write({ digest, data: bytes.subarray(offset, offset + chunk) });
        offset += chunk;
      } while (offset < bytes.byteLength);
      call.end();
    });
  }

  /** Sends `messages` as one WriteObject stream, with `headers` added to the call's metadata. */
  writeMessages(
    messages: readonly { digest: string; data: Uint8Array }[],
    headers: Record<string, string> = {},
  ): Promise<void> {
    const metadata = this.metadata.clone();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    return new Promise((resolve, reject) => {
      const call = this.client.WriteObject(metadata, (err: ServiceError | null) =>
        err ? reject(err) : resolve(),
      ) as ClientWritableStream<{ digest: string; data: Uint8Array }>;
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  /** A ReadObject call naming several digests, with the batch-read header: every message it answers. */
  async readBatch(digests: string[]): Promise<{ data: Buffer; digest?: string; skipped?: boolean }[]> {
    const metadata = this.metadata.clone();
    metadata.set(READ_BATCH_HEADER, '1');
    const call = this.client.ReadObject(
      { digest: digests[digests.length - 1] ?? '', digests } as never,
      metadata,
    ) as ClientReadableStream<{ data: Uint8Array; digest?: string; skipped?: boolean }>;
    const out: { data: Buffer; digest?: string; skipped?: boolean }[] = [];
    for await (const m of call) out.push({ ...m, data: Buffer.from(m.data) });
    return out;
  }

  /** The initial metadata of a HasObject answer. */
  hasObjectHeaders(digests: string[]): Promise<Metadata> {
    return new Promise((resolve, reject) => {
      const call = this.client.HasObject({ digest: digests }, this.metadata, (err: ServiceError | null) => {
        if (err) reject(err);
      }) as unknown as { on(event: 'metadata', listener: (md: Metadata) => void): void };
      call.on('metadata', resolve);
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The gRPC status code of a rejected promise. */
export async function grpcCode(promise: Promise<unknown>): Promise<number | string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return (error as ServiceError).code;
  }
}
