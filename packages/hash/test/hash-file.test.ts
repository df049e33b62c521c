import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type HashAlgorithm, hashBlob, hashFile, hashFiles, hashStream } from '@fsw/hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const CHUNK = 1 << 20;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fsw-hash-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** The digest a reference tool prints for `file`. */
function reference(algorithm: HashAlgorithm, file: string): string {
  const tool: Record<HashAlgorithm, readonly string[] | undefined> = {
    blake3: ['b3sum', '--no-names'],
    sha256: ['sha256sum'],
    sha512: ['sha512sum'],
    sha1: ['sha1sum'],
    md5: ['md5sum'],
    xxh3: ['xxhsum', '-H3'],
    xxh128: ['xxhsum', '-H2'],
    xxh64: ['xxhsum', '-H1'],
    crc32: undefined,
  };
  const argv = tool[algorithm];
  if (argv === undefined) {
    // No crc32 tool in coreutils: GNU gzip computes its own CRC-32 and stores it, little-endian, in the trailer.
    const gz = execFileSync('gzip', ['-c', '-n', file], { maxBuffer: 1 << 30 });
    return gz
      .readUInt32LE(gz.length - 8)
      .toString(16)
      .padStart(8, '0');
  }
  const out = execFileSync(argv[0]!, [...argv.slice(1), file], { encoding: 'utf8' }).trim();
  // `xxhsum -H3` prints the BSD style "XXH3 (file) = hex"; the others print "hex  file".
  const m = /= ([0-9a-f]+)$/.exec(out) ?? /^([0-9a-f]+)/.exec(out);
  return m![1]!;
}

const ALL: readonly HashAlgorithm[] = [
  'blake3',
  'sha256',
  'sha512',
  'sha1',
  'md5',
  'xxh3',
  'xxh128',
  'xxh64',
  'crc32',
];
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 12345];

describe('hashFile and hashFiles agree with the reference tools', () => {
  it('at edge sizes, for every algorithm, on this thread and on the worker pool', async () => {
    const files = SIZES.map((size, i) => {
      const p = join(dir, `f${size}`);
      writeFileSync(p, pattern(size, i + 1));
      return p;
    });
    for (const algorithm of ALL) {
      const want = files.map((f) => reference(algorithm, f));
      const single = await Promise.all(files.map((f) => hashFile(f, { algorithm })));
      expect(
        single.map((r) => r.digest),
        algorithm,
      ).toEqual(want);
      expect(single.map((r) => r.size)).toEqual(SIZES);
      const batch = await hashFiles(files, { algorithm, concurrency: 2 });
      expect(
        batch.map((r) => r.digest),
        `${algorithm} (pool)`,
      ).toEqual(want);
      expect(batch.map((r) => r.path)).toEqual(files);
    }
  });
});

describe('ranges', () => {
  const size = 3 * CHUNK + 777;
  let file: string;
  let bytes: Buffer;
  beforeEach(() => {
    file = join(dir, 'r.bin');
    bytes = pattern(size, 9);
    writeFileSync(file, bytes);
  });

  async function expectRange(range: Parameters<typeof hashFile>[1], expected: Buffer) {
    const piece = join(dir, 'piece');
    writeFileSync(piece, expected);
    const want = reference('sha256', piece);
    const r = await hashFile(file, { ...range, algorithm: 'sha256' });
    expect(r.digest).toBe(want);
    expect(r.size).toBe(size);
    const [viaPool] = await hashFiles([file, piece], { ...range, algorithm: 'sha256', concurrency: 2 });
    expect(viaPool!.digest).toBe(want);
  }

  it('{ offset, length } hashes that slice, clamped to the end of the file', async () => {
    await expectRange({ range: { offset: 1000, length: CHUNK + 5 } }, bytes.subarray(1000, 1000 + CHUNK + 5));
    await expectRange({ range: { offset: size - 10, length: 100 } }, bytes.subarray(size - 10));
    await expectRange({ range: { offset: size + 10, length: 100 } }, Buffer.alloc(0));
  });

  it('{ head } and { tail } hash the first or last bytes', async () => {
    await expectRange({ range: { head: 4096 } }, bytes.subarray(0, 4096));
    await expectRange({ range: { tail: 4096 } }, bytes.subarray(size - 4096));
  });

  it('{ head, tail } hashes both together, and the whole file when it is shorter than head + tail', async () => {
    await expectRange(
      { range: { head: 4096, tail: 2 * CHUNK } },
      Buffer.concat([bytes.subarray(0, 4096), bytes.subarray(size - 2 * CHUNK)]),
    );
    await expectRange({ range: { head: 2 * CHUNK, tail: 2 * CHUNK } }, bytes);
  });

  it('rejects a negative or fractional range', async () => {
    await expect(hashFile(file, { range: { head: -1 } })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
    await expect(hashFile(file, { range: { offset: 1.5, length: 3 } })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });
});

describe('files that cannot be hashed', () => {
  it('a missing file: E_NOT_FOUND with the path and the errno cause', async () => {
    const p = join(dir, 'missing');
    const err = await hashFile(p).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'HashError', code: 'E_NOT_FOUND', path: p });
    expect((err as Error).message).toContain(p);
    expect((err as Error & { cause: { code: string } }).cause.code).toBe('ENOENT');
  });

  it('a directory: E_IS_DIR', async () => {
    await expect(hashFile(dir)).rejects.toMatchObject({ code: 'E_IS_DIR', path: dir });
  });

  it('a FIFO, a device and a socket: E_NOT_FILE at once instead of blocking', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const sock = join(dir, 'sock');
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      for (const p of [fifo, '/dev/zero', sock]) {
        await expect(hashFile(p), p).rejects.toMatchObject({
          name: 'HashError',
          code: 'E_NOT_FILE',
          path: p,
        });
      }
      const plain = join(dir, 'plain');
      writeFileSync(plain, 'x');
      const errors: string[] = [];
      const res = await hashFiles([fifo, plain, '/dev/zero', sock], {
        concurrency: 2,
        onError: (e) => {
          errors.push(`${e.code} ${e.path}`);
          return 'skip';
        },
      });
      expect(res.map((r) => r.path)).toEqual([plain]);
      expect(errors.sort()).toEqual(
        [`E_NOT_FILE ${fifo}`, `E_NOT_FILE ${sock}`, 'E_NOT_FILE /dev/zero'].sort(),
      );
      expect(res.skipped.map((e) => e.path).sort()).toEqual([fifo, sock, '/dev/zero'].sort());
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a file that shrinks, grows or is touched while hashed: E_CHANGED', async () => {
    const file = join(dir, 'moving');
    const changes: ReadonlyArray<(p: string) => void> = [
      (p) => truncateSync(p, 10),
      (p) => writeFileSync(p, 'more', { flag: 'a' }),
      (p) => utimesSync(p, new Date(2001, 1, 1), new Date(2001, 1, 1)),
    ];
    for (const change of changes) {
      writeFileSync(file, pattern(4 * CHUNK, 3));
      let changed = false;
      const run = hashFiles([file], {
        concurrency: 1,
        progressIntervalMs: 0,
        // Called synchronously after the first chunk is hashed: the file changes mid-read.
        onProgress: (p) => {
          if (!changed && p.bytesDone > 0) {
            changed = true;
            change(file);
          }
        },
      });
      await expect(run).rejects.toMatchObject({ name: 'HashError', code: 'E_CHANGED', path: file });
      expect(changed).toBe(true);
    }
  });

  it('a small file read whole in one call must read exactly its size, else E_CHANGED', async () => {
    // A /proc file claims 0 bytes but reads more: the one-read path (calling thread and workers) asks for one byte
    // past the size fstat gave, so a file that grew meanwhile is caught without a second fstat.
    const small = join(dir, 'small');
    writeFileSync(small, 'steady');
    const res = await hashFiles(['/proc/self/stat', small], { concurrency: 2, onError: () => 'skip' });
    expect(res.map((r) => r.path)).toEqual([small]);
    expect(res[0]!.digest).toBe(reference('blake3', small));
    expect(res.skipped[0]).toMatchObject({ code: 'E_CHANGED', path: '/proc/self/stat' });
    expect(res.skipped[0]!.message).toContain('grew');
  });
});

describe('hashStream and hashBlob', () => {
  it('hash a Node stream, a web stream and a Blob to the same digest as the file', async () => {
    const file = join(dir, 's.bin');
    const bytes = pattern(2 * CHUNK + 99, 5);
    writeFileSync(file, bytes);
    for (const algorithm of ['blake3', 'sha256', 'xxh64'] as const) {
      const want = reference(algorithm, file);
      expect(await hashStream(createReadStream(file), { algorithm })).toBe(want);
      expect(
        await hashStream(Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>, { algorithm }),
      ).toBe(want);
      expect(await hashBlob(new Blob([Uint8Array.from(bytes)]), { algorithm })).toBe(want);
    }
  });

  it('stops with signal.reason when aborted', async () => {
    const reason = new Error('enough');
    const ac = new AbortController();
    async function* endless() {
      for (;;) {
        yield new Uint8Array(1024);
        ac.abort(reason);
      }
    }
    await expect(hashStream(endless(), { signal: ac.signal })).rejects.toBe(reason);
  });
});
