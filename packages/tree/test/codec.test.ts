import { TreeError } from '@fsw/errors';
import { decodeTree, encodeTree, formatDigest, parseDigest, type TreeEntry } from '@fsw/tree';
import { describe, expect, it } from 'vitest';

const DIR_ONE_HEX =
  'ee3e01000500000000000000c3bc6ec3af4700000000000000626c616b65333a' +
  '39303361306566663931383731653737363430393536303034646331303031313565343334326663363437336234323738313765313637346164306434376362' +
  'ed010002';
const NESTED = 'blake3:903a0eff91871e77640956004dc100115e4342fc6473b427817e1674ad0d47cb';
const D1 = `blake3:${'1'.repeat(64)}`;
const D2 = `blake3:${'2'.repeat(64)}`;

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
function field(text: string | Buffer): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return Buffer.concat([u64(bytes.length), bytes]);
}
const HEADER = Buffer.from('ee3e0100', 'hex');
/** One raw entry, written by hand so that invalid trees can be crafted. */
function raw(name: string | Buffer, digest: string, status: number, target?: string): Buffer {
  const parts = [field(name), field(digest), u32(status)];
  if (target !== undefined) parts.push(field(target));
  return Buffer.concat(parts);
}
const FILE = 0x010001a4;
const DIR = 0x020001ed;
const LINK = 0x040001ff;

function expectCorrupt(bytes: Uint8Array, message: RegExp): void {
  let caught: unknown;
  try {
    decodeTree(bytes);
  } catch (error) {
    caught = error;
  }
  expect(TreeError.is(caught), String(caught)).toBe(true);
  expect((caught as TreeError).code).toBe('E_CORRUPT');
  expect((caught as TreeError).message).toMatch(message);
}

describe('encodeTree / decodeTree', () => {
  it('reproduces the fstree vector for "dir one" byte for byte', () => {
    const bytes = encodeTree([{ name: 'ünï', digest: NESTED, type: 'dir', mode: 0o755 }]);
    expect(Buffer.from(bytes).toString('hex')).toBe(DIR_ONE_HEX);
    expect(bytes.length).toBe(100);
    expect(decodeTree(Buffer.from(DIR_ONE_HEX, 'hex'))).toEqual([
      { name: 'ünï', digest: NESTED, type: 'dir', mode: 0o755 },
    ]);
  });

  it('encodes an empty directory as the 4-byte header', () => {
    expect(Buffer.from(encodeTree([])).toString('hex')).toBe('ee3e0100');
    expect(decodeTree(HEADER)).toEqual([]);
  });

  it('sorts by UTF-8 bytes, writes status words and symlink targets, and round-trips', () => {
    const entries: TreeEntry[] = [
      { name: 'z', digest: D1, type: 'file', mode: 0o644 },
      { name: '\u{1F600}', digest: D2, type: 'file', mode: 0o600 },
      { name: '\uFFFD', digest: D2, type: 'dir', mode: 0o755 },
      { name: 'A', digest: '', type: 'symlink', mode: 0o777, target: '../x' },
      { name: 'run', digest: `sha1:${'a'.repeat(40)}`, type: 'file', mode: 0o4755 },
    ];
    const bytes = encodeTree(entries);
    const decoded = decodeTree(bytes);
    // U+FFFD (ef bf bd) sorts before U+1F600 (f0 9f 98 80) by bytes, though not by UTF-16 code units.
    expect(decoded.map((e) => e.name)).toEqual(['A', 'run', 'z', '\uFFFD', '\u{1F600}']);
    expect(decoded[0]).toEqual({ name: 'A', digest: '', type: 'symlink', mode: 0o777, target: '../x' });
    expect(decoded[1]).toEqual({ name: 'run', digest: `sha1:${'a'.repeat(40)}`, type: 'file', mode: 0o4755 });
    const buf = Buffer.from(bytes);
    expect(buf.subarray(4, 12)).toEqual(u64(1));
    expect(buf.subarray(13, 21)).toEqual(u64(0));
    expect(buf.readUInt32LE(21)).toBe(LINK);
    expect(Buffer.from(encodeTree(decoded))).toEqual(buf);
  });

  it('writes files and folders in UTF-8 byte order, with the same bytes as a hand-built object', () => {
    // Without a symlink or an astral character the encoder sorts strings directly: check it against the format.
    const entries: TreeEntry[] = [
      { name: '\u00e9t\u00e9', digest: D1, type: 'file', mode: 0o644 },
      { name: 'Zoo', digest: D2, type: 'dir', mode: 0o755 },
      { name: '\u4e2d', digest: `sha1:${'B'.repeat(40)}`, type: 'file', mode: 0o600 },
      { name: 'a', digest: '2'.repeat(64), type: 'file', mode: 0o755 },
    ];
    const field = (text: string) => Buffer.concat([u64(Buffer.byteLength(text)), Buffer.from(text, 'utf8')]);
    const entry = (name: string, digest: string, status: number) =>
      Buffer.concat([field(name), field(digest), u32(status)]);
    const expected = Buffer.concat([
      HEADER,
      entry('Zoo', D2, 0x020001ed),
      entry('a', D2, 0x010001ed),
      entry('\u00e9t\u00e9', D1, 0x010001a4),
      entry('\u4e2d', `sha1:${'b'.repeat(40)}`, 0x01000180),
    ]);
    expect(Buffer.from(encodeTree(entries))).toEqual(expected);
    expect(() => encodeTree([...entries, { name: 'a', digest: D1, type: 'file', mode: 0o644 }])).toThrow(
      /duplicate name 'a'/,
    );
  });

  it('normalises digests it writes and rejects invalid entries', () => {
    const bare = encodeTree([{ name: 'a', digest: 'F'.repeat(64), type: 'file', mode: 0o644 }]);
    expect(decodeTree(bare)[0]?.digest).toBe(`blake3:${'f'.repeat(64)}`);
    const bad = (e: TreeEntry) => () => encodeTree([e]);
    for (const name of ['', '.', '..', 'a/b', 'a\u0000b']) {
      expect(bad({ name, digest: D1, type: 'file', mode: 0o644 })).toThrow(/cannot encode tree/);
    }
    expect(bad({ name: 'a', digest: 'nope', type: 'file', mode: 0o644 })).toThrow(/invalid digest/);
    expect(bad({ name: 'a', digest: '', type: 'symlink', mode: 0o777 })).toThrow(/target/);
    expect(() =>
      encodeTree([
        { name: 'a', digest: D1, type: 'file', mode: 0o644 },
        { name: 'a', digest: D2, type: 'dir', mode: 0o755 },
      ]),
    ).toThrow(/duplicate/);
  });
});

describe('decodeTree rejects corrupt input with E_CORRUPT', () => {
  const ok = raw('a', D1, FILE);
  const cases: [string, Buffer, RegExp][] = [
    ['empty input', Buffer.alloc(0), /truncated header/],
    ['3 bytes', Buffer.from('ee3e01', 'hex'), /truncated header/],
    ['bad magic', Buffer.from('ef3e0100', 'hex'), /bad magic 0x3eef/],
    ['bad version', Buffer.from('ee3e0200', 'hex'), /unsupported version 2/],
    ['truncated name length', Buffer.concat([HEADER, Buffer.from([1, 0, 0])]), /truncated name length/],
    ['name length past the end', Buffer.concat([HEADER, u64(5), Buffer.from('abc')]), /runs past the end/],
    [
      'huge name length',
      Buffer.concat([HEADER, u64(0xffffffffffffffffn), Buffer.from('abc')]),
      /past the end/,
    ],
    [
      'truncated digest length',
      Buffer.concat([HEADER, field('a'), Buffer.from([0])]),
      /truncated digest length/,
    ],
    [
      'digest past the end',
      Buffer.concat([HEADER, field('a'), u64(71), Buffer.from('blake3:')]),
      /past the end/,
    ],
    [
      'truncated status',
      Buffer.concat([HEADER, field('a'), field(D1), Buffer.from([0xa4, 1])]),
      /truncated status/,
    ],
    [
      'truncated entry after a good one',
      Buffer.concat([HEADER, ok, Buffer.from([1])]),
      /truncated name length/,
    ],
    [
      'missing symlink target',
      Buffer.concat([HEADER, field('l'), field(''), u32(LINK)]),
      /truncated symlink target/,
    ],
    [
      'symlink target past the end',
      Buffer.concat([HEADER, field('l'), field(''), u32(LINK), u64(10), Buffer.from('x')]),
      /past the end/,
    ],
    ['empty name', Buffer.concat([HEADER, raw('', D1, FILE)]), /empty name/],
    ['name "."', Buffer.concat([HEADER, raw('.', D1, DIR)]), /name '\.'/],
    ['name ".."', Buffer.concat([HEADER, raw('..', D1, DIR)]), /name '\.\.'/],
    ['name with a slash', Buffer.concat([HEADER, raw('a/b', D1, FILE)]), /contains '\/'/],
    ['name with NUL', Buffer.concat([HEADER, raw('a\u0000b', D1, FILE)]), /contains NUL/],
    ['name not UTF-8', Buffer.concat([HEADER, raw(Buffer.from([0xff, 0xfe]), D1, FILE)]), /not valid UTF-8/],
    ['duplicate names', Buffer.concat([HEADER, ok, raw('a', D2, FILE)]), /duplicate name 'a'/],
    ['unsorted names', Buffer.concat([HEADER, raw('b', D1, FILE), ok]), /not sorted at 'a'/],
    ['no type bits', Buffer.concat([HEADER, raw('a', D1, 0x1a4)]), /unknown status bits 0x000001a4/],
    ['two type bits', Buffer.concat([HEADER, raw('a', D1, 0x030001a4)]), /unknown status bits/],
    ['unknown type 8', Buffer.concat([HEADER, raw('a', D1, 0x080001a4)]), /unknown status bits/],
    ['stray bits 12-23', Buffer.concat([HEADER, raw('a', D1, 0x010081a4)]), /unknown status bits/],
    ['unparsable digest', Buffer.concat([HEADER, raw('a', 'blake3:xyz', FILE)]), /invalid digest/],
    [
      'digest of wrong length',
      Buffer.concat([HEADER, raw('a', `blake3:${'a'.repeat(40)}`, FILE)]),
      /invalid digest/,
    ],
    ['empty digest on a file', Buffer.concat([HEADER, raw('a', '', FILE)]), /invalid digest/],
    ['digest on a symlink', Buffer.concat([HEADER, raw('l', D1, LINK, 'x')]), /symlink 'l' has a digest/],
    ['empty symlink target', Buffer.concat([HEADER, raw('l', '', LINK, '')]), /empty target/],
    ['symlink target with NUL', Buffer.concat([HEADER, raw('l', '', LINK, 'a\u0000')]), /containing NUL/],
  ];
  it.each(cases)('%s', (_label, bytes, message) => {
    expectCorrupt(bytes, message);
  });

  it('accepts the bare-hex and sha1 forms fstree may write', () => {
    const bytes = Buffer.concat([
      HEADER,
      raw('a', 'A'.repeat(64), FILE),
      raw('b', 'b'.repeat(40), FILE),
      raw('c', `sha1:${'c'.repeat(40)}`, DIR),
    ]);
    expect(decodeTree(bytes).map((e) => e.digest)).toEqual([
      `blake3:${'a'.repeat(64)}`,
      `sha1:${'b'.repeat(40)}`,
      `sha1:${'c'.repeat(40)}`,
    ]);
  });
});

describe('parseDigest / formatDigest', () => {
  it('accepts every form and normalises', () => {
    expect(parseDigest(`blake3:${'AB'.repeat(32)}`)).toBe(`blake3:${'ab'.repeat(32)}`);
    expect(parseDigest('ab'.repeat(32))).toBe(`blake3:${'ab'.repeat(32)}`);
    expect(parseDigest(`sha1:${'0'.repeat(40)}`)).toBe(`sha1:${'0'.repeat(40)}`);
    expect(parseDigest('0'.repeat(40))).toBe(`sha1:${'0'.repeat(40)}`);
  });

  it.each([
    '',
    'blake3:',
    `blake3:${'0'.repeat(40)}`,
    `sha1:${'0'.repeat(64)}`,
    `sha256:${'0'.repeat(64)}`,
    '0'.repeat(63),
    `${'0'.repeat(63)}g`,
    ` ${'0'.repeat(64)}`,
  ])('rejects %j with E_INVALID_ARGUMENT', (text) => {
    expect(() => parseDigest(text)).toThrowError(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it('formats bytes and hex', () => {
    expect(formatDigest(new Uint8Array(32).fill(255))).toBe(`blake3:${'ff'.repeat(32)}`);
    expect(formatDigest('AA'.repeat(20), 'sha1')).toBe(`sha1:${'aa'.repeat(20)}`);
    expect(() => formatDigest('abc')).toThrowError(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });
});
