import { TreeError } from '@fsw/errors';
import { normalDigest, truncate, tryParseDigest } from './digest.js';
import type { TreeEntry, TreeEntryType } from './types.js';

/** The first two bytes of every tree object (little-endian u16). */
export const TREE_MAGIC = 0x3eee;
/** The tree object version this package reads and writes. */
export const TREE_VERSION = 1;

const TYPE_FLAG: Readonly<Record<TreeEntryType, number>> = {
  file: 1 << 24,
  dir: 2 << 24,
  symlink: 4 << 24,
};
const PERMISSION_MASK = 0o7777;

/** fstree's `status` word of an entry: permission bits | type flag (`0x010001a4` for a 0644 file). */
export function entryStatus(type: TreeEntryType, mode: number): number {
  return (TYPE_FLAG[type] | (mode & PERMISSION_MASK)) >>> 0;
}

/** The entry type and permission bits of a `status` word, or `undefined` when it carries unknown bits. */
export function statusType(status: number): { type: TreeEntryType; mode: number } | undefined {
  const mode = status & PERMISSION_MASK;
  switch (status - mode) {
    case TYPE_FLAG.file:
      return { type: 'file', mode };
    case TYPE_FLAG.dir:
      return { type: 'dir', mode };
    case TYPE_FLAG.symlink:
      return { type: 'symlink', mode };
    default:
      return undefined;
  }
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Why a name cannot be a tree entry's name, or `undefined` when it can. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'empty name';
  if (name === '.' || name === '..') return `name '${name}'`;
  if (name.includes('/')) return `name '${truncate(name)}' contains '/'`;
  if (name.includes('\u0000')) return `name '${truncate(name)}' contains NUL`;
  return undefined;
}

/** Orders names by their UTF-8 bytes, as fstree sorts them (not by UTF-16 code units). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Serialises directory entries into an fstree tree object (magic, version, then the children sorted by name bytes).
 * Entries may come in any order; digests may be given in any form {@link parseDigest} accepts and are written
 * normalised (`blake3:<hex>`). A symlink is written with an empty digest and its `target`.
 * @throws TreeError E_INVALID_ARGUMENT for an invalid or duplicate name, a missing or invalid digest, a symlink
 *   without a target
 */
export function encodeTree(entries: readonly TreeEntry[]): Uint8Array {
  return encodeFast(entries) ?? encodeGeneral(entries);
}

function hasSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return true;
  }
  return false;
}

interface FastEntry {
  readonly name: string;
  readonly nameBytes: number;
  readonly digest: string;
  readonly status: number;
}

/**
 * The common case, without a Buffer per field: files and directories (no symlink) whose names hold no surrogate,
 * so that UTF-16 order is UTF-8 byte order and equal strings are equal bytes. `undefined` for anything else (or any
 * problem), which {@link encodeGeneral} then handles and reports.
 */
function encodeFast(entries: readonly TreeEntry[]): Uint8Array | undefined {
  const list: FastEntry[] = [];
  let size = 4;
  for (const entry of entries) {
    if ((entry.type !== 'file' && entry.type !== 'dir') || nameProblem(entry.name) !== undefined)
      return undefined;
    if (hasSurrogate(entry.name)) return undefined;
    const digest = normalDigest(entry.digest);
    if (digest === undefined) return undefined;
    const nameBytes = Buffer.byteLength(entry.name, 'utf8');
    list.push({ name: entry.name, nameBytes, digest, status: entryStatus(entry.type, entry.mode) });
    size += 8 + nameBytes + 8 + digest.length + 4;
  }
  list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < list.length; i++) if (list[i - 1]!.name === list[i]!.name) return undefined;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16LE(TREE_MAGIC, 0);
  out.writeUInt16LE(TREE_VERSION, 2);
  let at = 4;
  for (const e of list) {
    // Lengths are u64 little-endian; a name or digest is far below 2^32 bytes.
    out.writeUInt32LE(e.nameBytes, at);
    out.writeUInt32LE(0, at + 4);
    at += 8 + out.write(e.name, at + 8, 'utf8');
    out.writeUInt32LE(e.digest.length, at);
    out.writeUInt32LE(0, at + 4);
    at += 8 + out.write(e.digest, at + 8, 'latin1');
    out.writeUInt32LE(e.status, at);
    at += 4;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

function encodeGeneral(entries: readonly TreeEntry[]): Uint8Array {
  const encoded = entries.map((entry) => {
    const problem = nameProblem(entry.name);
    if (problem !== undefined) throw new TreeError('E_INVALID_ARGUMENT', `cannot encode tree: ${problem}`);
    const name = Buffer.from(entry.name, 'utf8');
    let digest: Buffer;
    let target: Buffer | undefined;
    if (entry.type === 'symlink') {
      if (entry.target === undefined || entry.target === '' || entry.target.includes('\u0000')) {
        throw new TreeError(
          'E_INVALID_ARGUMENT',
          `cannot encode tree: symlink '${truncate(entry.name)}' needs a non-empty target without NUL`,
        );
      }
      digest = Buffer.alloc(0);
      target = Buffer.from(entry.target, 'utf8');
    } else {
      const parts = tryParseDigest(entry.digest);
      if (parts === undefined) {
        throw new TreeError(
          'E_INVALID_ARGUMENT',
          `cannot encode tree: '${truncate(entry.name)}' has an invalid digest '${truncate(entry.digest)}'`,
        );
      }
      digest = Buffer.from(`${parts.algorithm}:${parts.hex}`, 'latin1');
    }
    if (TYPE_FLAG[entry.type] === undefined) {
      throw new TreeError(
        'E_INVALID_ARGUMENT',
        `cannot encode tree: unknown entry type '${String(entry.type)}'`,
      );
    }
    return { name, digest, target, status: entryStatus(entry.type, entry.mode) };
  });
  encoded.sort((a, b) => Buffer.compare(a.name, b.name));
  let size = 4;
  for (let i = 0; i < encoded.length; i++) {
    const e = encoded[i]!;
    if (i > 0 && Buffer.compare(encoded[i - 1]!.name, e.name) === 0) {
      throw new TreeError(
        'E_INVALID_ARGUMENT',
        `cannot encode tree: duplicate name '${truncate(e.name.toString('utf8'))}'`,
      );
    }
    size += 8 + e.name.length + 8 + e.digest.length + 4 + (e.target ? 8 + e.target.length : 0);
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16LE(TREE_MAGIC, 0);
  out.writeUInt16LE(TREE_VERSION, 2);
  let at = 4;
  const writeBytes = (bytes: Buffer) => {
    out.writeBigUInt64LE(BigInt(bytes.length), at);
    at += 8;
    bytes.copy(out, at);
    at += bytes.length;
  };
  for (const e of encoded) {
    writeBytes(e.name);
    writeBytes(e.digest);
    out.writeUInt32LE(e.status, at);
    at += 4;
    if (e.target) writeBytes(e.target);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * Parses an fstree tree object. The bytes are treated as untrusted (they may come from a remote): every rule is
 * checked before anything is returned.
 * @throws TreeError E_CORRUPT for bad magic or version, truncated data, a length past the end, a name that is empty,
 *   `.`, `..`, contains `/` or NUL or is not UTF-8, duplicate or unsorted names, unknown status bits, a digest that
 *   does not parse (or a symlink with a digest), a symlink target that is empty or contains NUL
 */
export function decodeTree(bytes: Uint8Array): TreeEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (why: string) => new TreeError('E_CORRUPT', `corrupt tree object: ${why}`);
  if (bytes.byteLength < 4) throw corrupt(`truncated header (${bytes.byteLength} bytes)`);
  const magic = view.getUint16(0, true);
  if (magic !== TREE_MAGIC) throw corrupt(`bad magic 0x${magic.toString(16).padStart(4, '0')}`);
  const version = view.getUint16(2, true);
  if (version !== TREE_VERSION) throw corrupt(`unsupported version ${version}`);
  let at = 4;
  const end = bytes.byteLength;
  const readLength = (what: string): number => {
    if (end - at < 8) throw corrupt(`truncated ${what} length at byte ${at}`);
    const length = view.getBigUint64(at, true);
    at += 8;
    if (length > BigInt(end - at))
      throw corrupt(`${what} length ${length} at byte ${at - 8} runs past the end`);
    return Number(length);
  };
  const entries: TreeEntry[] = [];
  let previous: Uint8Array | undefined;
  while (at < end) {
    const nameLength = readLength('name');
    const nameBytes = bytes.subarray(at, at + nameLength);
    at += nameLength;
    let name: string;
    try {
      name = strictDecoder.decode(nameBytes);
    } catch {
      throw corrupt(`name at byte ${at - nameLength} is not valid UTF-8`);
    }
    const problem = nameProblem(name);
    if (problem !== undefined) throw corrupt(problem);
    if (previous !== undefined) {
      const order = Buffer.compare(previous, nameBytes);
      if (order === 0) throw corrupt(`duplicate name '${truncate(name)}'`);
      if (order > 0) throw corrupt(`names not sorted at '${truncate(name)}'`);
    }
    previous = nameBytes;
    const digestLength = readLength('digest');
    const digestText = Buffer.from(bytes.buffer, bytes.byteOffset + at, digestLength).toString('latin1');
    at += digestLength;
    if (end - at < 4) throw corrupt(`truncated status of '${truncate(name)}'`);
    const status = view.getUint32(at, true);
    at += 4;
    const kind = statusType(status);
    if (kind === undefined) {
      throw corrupt(`unknown status bits 0x${status.toString(16).padStart(8, '0')} on '${truncate(name)}'`);
    }
    if (kind.type === 'symlink') {
      if (digestLength !== 0) throw corrupt(`symlink '${truncate(name)}' has a digest`);
      const targetLength = readLength('symlink target');
      const targetBytes = bytes.subarray(at, at + targetLength);
      at += targetLength;
      let target: string;
      try {
        target = strictDecoder.decode(targetBytes);
      } catch {
        throw corrupt(`target of symlink '${truncate(name)}' is not valid UTF-8`);
      }
      if (target === '' || target.includes('\u0000')) {
        throw corrupt(`symlink '${truncate(name)}' has an empty target or one containing NUL`);
      }
      entries.push({ name, digest: '', type: 'symlink', mode: kind.mode, target });
    } else {
      const parts = tryParseDigest(digestText);
      if (parts === undefined)
        throw corrupt(`'${truncate(name)}' has an invalid digest '${truncate(digestText)}'`);
      entries.push({ name, digest: `${parts.algorithm}:${parts.hex}`, type: kind.type, mode: kind.mode });
    }
  }
  return entries;
}
