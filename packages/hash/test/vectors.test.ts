import { execFileSync } from 'node:child_process';
import { ALGORITHMS, createHasher, engines, type HashAlgorithm, hashBytes } from '@fsw/hash';
import { describe, expect, it } from 'vitest';

// Published digests: BLAKE3 test_vectors.json (input byte i = i % 251), FIPS 180 / RFC 1321 for "abc",
// the xxHash reference outputs, and the CRC-32 check value of "123456789".
const BLAKE3: ReadonlyArray<readonly [number, string]> = [
  [0, 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'],
  [1, '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213'],
  [1023, '10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11'],
  [1024, '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7'],
  [1025, 'd00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444'],
  [2048, 'e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a'],
  [2049, '5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030'],
  [3072, 'b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2'],
  [3073, '7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3'],
  [4096, '015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969'],
  [4097, '9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995'],
  [5120, '9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833'],
  [5121, '628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff'],
  [6144, '3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205'],
  [6145, 'f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f'],
  [7168, '61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a'],
  [7169, 'a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817'],
  [8192, 'aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63'],
  [8193, 'bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b'],
  [16384, 'f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4'],
  [31744, '62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47'],
  [102400, 'bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085'],
];

const KNOWN: Readonly<Record<HashAlgorithm, readonly [string, string]>> = {
  // [digest of "", digest of "abc"]
  blake3: [
    'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
    '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85',
  ],
  sha256: [
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  ],
  sha512: [
    'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
    'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
  ],
  sha1: ['da39a3ee5e6b4b0d3255bfef95601890afd80709', 'a9993e364706816aba3e25717850c26c9cd0d89d'],
  md5: ['d41d8cd98f00b204e9800998ecf8427e', '900150983cd24fb0d6963f7d28e17f72'],
  xxh3: ['2d06800538d394c2', '78af5f94892f3950'],
  xxh128: ['99aa06d3014798d86001c324468d497f', '06b05ab6733a618578af5f94892f3950'],
  xxh64: ['ef46db3751d8e999', '44bc2cf5ad770999'],
  crc32: ['00000000', '352441c2'],
};

function blake3Input(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = i % 251;
  return out;
}

describe('known-answer vectors', () => {
  it('covers every algorithm', () => {
    expect(Object.keys(KNOWN).sort()).toEqual([...ALGORITHMS].sort());
  });

  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: "" and "abc", one-shot and streamed`, async () => {
      const [empty, abc] = KNOWN[algorithm];
      expect(await hashBytes('', { algorithm })).toBe(empty);
      expect(await hashBytes('abc', { algorithm })).toBe(abc);
      expect(await hashBytes(new Uint8Array([0x61, 0x62, 0x63]), { algorithm })).toBe(abc);
      const h = await createHasher(algorithm);
      expect(h.algorithm).toBe(algorithm);
      expect(h.engine).toBe(engines()[algorithm]);
      h.update('a')
        .update(new Uint8Array([0x62]))
        .update('c');
      expect(h.digest()).toBe(abc);
      // digest() may be read again, and digestBytes() gives the same value as bytes.
      expect(h.digest()).toBe(abc);
      expect(Buffer.from(h.digestBytes()).toString('hex')).toBe(abc);
      expect(h.reset().digest()).toBe(empty);
    });
  }

  it('crc32: the check value of "123456789"', async () => {
    expect(await hashBytes('123456789', { algorithm: 'crc32' })).toBe('cbf43926');
  });

  it('blake3: the official test vectors, one-shot and in odd-sized pieces', async () => {
    for (const [length, digest] of BLAKE3) {
      const input = blake3Input(length);
      expect(await hashBytes(input), `length ${length}`).toBe(digest);
      const h = await createHasher('blake3');
      for (let i = 0; i < length; i += 1000) h.update(input.subarray(i, i + 1000));
      expect(h.digest(), `streamed, length ${length}`).toBe(digest);
    }
  });

  it('uses the native BLAKE3 engine when installed, node:crypto for the SHA family and MD5, zlib for CRC-32', () => {
    const e = engines();
    expect(e.blake3).toBe('native');
    expect(e.sha256).toBe('node:crypto');
    expect(e.md5).toBe('node:crypto');
    expect(e.xxh3).toBe('hash-wasm');
    expect(e.crc32).toBe('node:zlib');
  });

  it('falls back to hash-wasm for BLAKE3 without the native engine, with the same digests', () => {
    // A fresh process, because the engine is chosen once per process.
    const script = `
      import('@fsw/hash').then(async (m) => {
        const out = { engine: m.engines().blake3, digests: [] };
        for (const n of [0, 1, 1024, 1025, 102400]) {
          const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = i % 251;
          out.digests.push(await m.hashBytes(b));
        }
        process.stdout.write(JSON.stringify(out));
      });`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: new URL('.', import.meta.url),
        env: { ...process.env, FSW_HASH_NATIVE: '0' },
        encoding: 'utf8',
      }),
    ) as { engine: string; digests: string[] };
    expect(out.engine).toBe('hash-wasm');
    const want = [0, 1, 1024, 1025, 102400].map((n) => BLAKE3.find(([l]) => l === n)![1]);
    expect(out.digests).toEqual(want);
  });

  it('rejects an unknown algorithm with E_INVALID_ARGUMENT naming the valid ones', async () => {
    const err = await hashBytes('x', { algorithm: 'sha3' as HashAlgorithm }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'HashError', code: 'E_INVALID_ARGUMENT' });
    expect((err as Error).message).toContain('blake3, sha256, sha512, sha1, md5, xxh3, xxh128, xxh64, crc32');
    await expect(createHasher('nope' as HashAlgorithm)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});
