import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CACHE_SERVICE_PROTO,
  cacheServiceDefinition,
  decodeBatchAnswer,
  digestFromFstreeClientPath,
  digestFromObjectPath,
  encodeBatchQuery,
  fstreeClientPath,
  normalizeDigest,
  objectPath,
} from '@fsw/remote';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const D = 'blake3:dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355';
const HEX = D.slice('blake3:'.length);

let dir: string;
let reference: grpc.ServiceDefinition;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-remote-proto-'));
  const file = join(dir, 'fstree.proto');
  await writeFile(file, CACHE_SERVICE_PROTO);
  // protobufjs (through proto-loader) is the reference encoder: our hand-written codec must agree with it byte for byte.
  const pkg = protoLoader.loadSync(file, { keepCase: false, longs: String, defaults: true });
  reference = pkg['fstree.CacheService'] as grpc.ServiceDefinition;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cacheServiceDefinition', () => {
  it('encodes every message exactly as protobufjs does, and decodes what protobufjs encodes', () => {
    const cases: [string, 'request' | 'response', Record<string, unknown>][] = [
      ['HasObject', 'request', { digest: [D, HEX, ''] }],
      ['HasObject', 'response', { present: [true, false, true] }],
      ['HasTree', 'request', { digest: [D] }],
      ['HasTree', 'response', { missingTrees: [HEX], missingObjects: [D, D] }],
      ['ReadObject', 'request', { digest: D }],
      ['ReadObject', 'response', { data: Buffer.from('hello\n') }],
      ['WriteObject', 'request', { digest: D, data: Buffer.from([0, 1, 2, 255]) }],
      ['WriteObject', 'response', {}],
    ];
    for (const [name, side, message] of cases) {
      const ours = cacheServiceDefinition[name]!;
      const theirs = reference[name]!;
      expect(ours.path).toBe(theirs.path);
      expect(ours.requestStream).toBe(theirs.requestStream);
      expect(ours.responseStream).toBe(theirs.responseStream);
      const enc = side === 'request' ? 'requestSerialize' : 'responseSerialize';
      const dec = side === 'request' ? 'requestDeserialize' : 'responseDeserialize';
      const bytes = ours[enc](message as never);
      expect(Buffer.from(bytes).toString('hex'), `${name} ${side}`).toBe(
        Buffer.from(theirs[enc](message as never)).toString('hex'),
      );
      const back = ours[dec](Buffer.from(theirs[enc](message as never))) as Record<string, unknown>;
      for (const [k, v] of Object.entries(message)) {
        if (v instanceof Uint8Array) expect(Buffer.from(back[k] as Uint8Array).equals(v)).toBe(true);
        else expect(back[k]).toEqual(v);
      }
    }
  });

  it('writes an empty object as one message with no data field, and reads it either way', () => {
    const def = cacheServiceDefinition.WriteObject;
    const ours = def.requestSerialize({ digest: D, data: new Uint8Array(0) });
    // C++ protobuf omits an empty proto3 bytes field; protobufjs writes it with length 0: both must decode as empty.
    const theirs = reference.WriteObject!.requestSerialize({ digest: D, data: Buffer.alloc(0) });
    for (const bytes of [ours, theirs]) {
      const m = def.requestDeserialize(Buffer.from(bytes));
      expect(m.digest).toBe(D);
      expect(m.data.length).toBe(0);
    }
    expect(ours.length).toBe(2 + D.length);
  });

  it('encodes the batch-read extension so that a plain decoder reads the last digest and plain chunks', () => {
    const def = cacheServiceDefinition.ReadObject;
    const digests = [D, D.replace('blake3:', '')];
    const request = def.requestSerialize({ digest: D, digests });
    expect(reference.ReadObject!.requestDeserialize(Buffer.from(request))).toMatchObject({
      digest: digests[1],
    });
    expect(def.requestDeserialize(Buffer.from(request))).toEqual({ digest: digests[1], digests });
    expect(def.requestDeserialize(Buffer.from(def.requestSerialize({ digest: D })))).toEqual({ digest: D });
    const first = { data: Buffer.from('abc'), digest: D };
    const skipped = { data: new Uint8Array(0), digest: D, skipped: true };
    for (const m of [first, skipped]) {
      const back = def.responseDeserialize(Buffer.from(def.responseSerialize(m)));
      expect({ ...back, data: Buffer.from(back.data) }).toEqual({ ...m, data: Buffer.from(m.data) });
      // Unknown fields to a reference decoder: it sees the data only.
      expect(
        Buffer.from(reference.ReadObject!.responseDeserialize(Buffer.from(def.responseSerialize(m))).data),
      ).toEqual(Buffer.from(m.data));
    }
  });

  it('reads unpacked repeated bools, which some encoders send', () => {
    // field 1, wire type 0: true, false, true
    const unpacked = Buffer.from([0x08, 1, 0x08, 0, 0x08, 1]);
    expect(cacheServiceDefinition.HasObject.responseDeserialize(unpacked)).toEqual({
      present: [true, false, true],
    });
  });

  it('rejects a truncated message with E_PROTOCOL', () => {
    expect(() => cacheServiceDefinition.HasTree.responseDeserialize(Buffer.from([0x0a, 10, 1, 2]))).toThrow(
      expect.objectContaining({ name: 'RemoteError', code: 'E_PROTOCOL' }),
    );
  });

  it('serves and calls all four rpcs over a real socket', async () => {
    const server = new grpc.Server();
    const writes: { digest: string; bytes: number }[] = [];
    server.addService(cacheServiceDefinition, {
      HasObject: (
        call: grpc.ServerUnaryCall<{ digest: string[] }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => cb(null, { present: call.request.digest.map((d) => d === D) }),
      HasTree: (call: grpc.ServerWritableStream<{ digest: string[] }, unknown>) => {
        call.write({ missingTrees: [HEX], missingObjects: [] });
        call.write({ missingTrees: [], missingObjects: [D] });
        call.end();
      },
      ReadObject: (call: grpc.ServerWritableStream<{ digest: string }, unknown>) => {
        call.write({ data: Buffer.from(`${call.request.digest}|`) });
        call.write({ data: Buffer.from('tail') });
        call.end();
      },
      WriteObject: (
        call: grpc.ServerReadableStream<{ digest: string; data: Uint8Array }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        let digest = '';
        let bytes = 0;
        call.on('data', (m: { digest: string; data: Uint8Array }) => {
          digest ||= m.digest;
          bytes += m.data.length;
        });
        call.on('end', () => {
          writes.push({ digest, bytes });
          cb(null, {});
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const Client = grpc.makeGenericClientConstructor(cacheServiceDefinition, 'CacheService');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Record<
      string,
      (...args: unknown[]) => unknown
    >;
    try {
      const has = await new Promise((resolve, reject) =>
        client.HasObject!({ digest: [D, HEX] }, (e: unknown, r: unknown) => (e ? reject(e) : resolve(r))),
      );
      expect(has).toEqual({ present: [true, false] });

      const stream = client.HasTree!({ digest: [D] }) as AsyncIterable<unknown>;
      const msgs: unknown[] = [];
      for await (const m of stream) msgs.push(m);
      expect(msgs).toEqual([
        { missingTrees: [HEX], missingObjects: [] },
        { missingTrees: [], missingObjects: [D] },
      ]);

      const read = client.ReadObject!({ digest: D }) as AsyncIterable<{ data: Uint8Array }>;
      const chunks: Buffer[] = [];
      for await (const m of read) chunks.push(Buffer.from(m.data));
      expect(Buffer.concat(chunks).toString()).toBe(`${D}|tail`);

      await new Promise<void>((resolve, reject) => {
        const call = client.WriteObject!((e: unknown) =>
          e ? reject(e) : resolve(),
        ) as grpc.ClientWritableStream<unknown>;
        call.write({ digest: D, data: Buffer.alloc(70_000, 1) });
        call.write({ digest: D, data: Buffer.alloc(5, 2) });
        call.end();
      });
      expect(writes).toEqual([{ digest: D, bytes: 70_005 }]);
    } finally {
      (client as unknown as grpc.Client).close();
      server.forceShutdown();
    }
  });
});

describe('HTTP paths', () => {
  it('maps digests to the jolt-cache and fstree-client paths and back', () => {
    expect(objectPath(D)).toBe(`/objects/${D}`);
    expect(digestFromObjectPath(`/objects/${D}`)).toBe(D);
    expect(digestFromObjectPath(`/objects/${HEX}`)).toBe(D);
    expect(digestFromObjectPath(`/objects/blake3%3A${HEX}`)).toBe(D);
    expect(digestFromObjectPath('/objects/nope')).toBeUndefined();
    // The real fstree client's split: s[0:2] / s[2:8] / s[6:] (the last segment starts with ':' + the whole hex).
    expect(fstreeClientPath(D)).toBe(`/bl/ake3:d/:${HEX}`);
    expect(fstreeClientPath(D, '/cache/')).toBe(`/cache/bl/ake3:d/:${HEX}`);
    expect(digestFromFstreeClientPath(fstreeClientPath(D, '/cache'), '/cache')).toBe(D);
    expect(digestFromFstreeClientPath(`/bl/ake3%3Ad/%3A${HEX}`)).toBe(D);
    const sha1 = `sha1:${'ab'.repeat(20)}`;
    expect(fstreeClientPath(sha1)).toBe(`/sh/a1:aba/${sha1.slice(6)}`);
    expect(digestFromFstreeClientPath(fstreeClientPath(sha1))).toBe(sha1);
    // The non-overlapping split of earlier versions is still read.
    expect(digestFromFstreeClientPath(`/bl/ake3:d/${D.slice(8)}`)).toBe(D);
    expect(digestFromFstreeClientPath('/bl/ake3:d/zz')).toBeUndefined();
    expect(digestFromFstreeClientPath(`/bl/ake3:e/:${HEX}`)).toBeUndefined();
  });

  it('builds and reads the batch query', () => {
    expect(JSON.parse(encodeBatchQuery([D]))).toEqual({ blobs: [D] });
    expect(decodeBatchAnswer(JSON.stringify({ blobs: [D] }), 'missing')).toEqual([D]);
    expect(decodeBatchAnswer(JSON.stringify({ present: [D] }), 'present')).toEqual([D]);
    expect(decodeBatchAnswer(JSON.stringify([D]), 'missing')).toEqual([D]);
    expect(() => decodeBatchAnswer('{"x":1}', 'missing')).toThrow(
      expect.objectContaining({ code: 'E_PROTOCOL' }),
    );
  });

  it('normalises bare hex and full digests', () => {
    expect(normalizeDigest(HEX)).toBe(D);
    expect(normalizeDigest(D.toUpperCase())).toBe(D);
    expect(normalizeDigest('a'.repeat(40))).toBe(`sha1:${'a'.repeat(40)}`);
    expect(() => normalizeDigest('blake3:xyz')).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
  });
});
