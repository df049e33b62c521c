import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fromErrno, TreeError } from '@fsw/errors';
import { INDEX_DIR } from './ignore-rules.js';

/** What the index remembers of one path after a write-tree or checkout. */
export interface IndexRecord {
  readonly type: 'file' | 'dir' | 'symlink';
  /**
   * `blake3:<hex>` for a file; for a folder, the digest of its tree when a write-tree wrote the index (`''` from a
   * checkout, or when the index does not vouch for its trees); `''` otherwise.
   */
  readonly digest: string;
  /** Full `st_mode`. */
  readonly mode: number;
  /** A file's size; for a folder with a tree digest, the number of entries of that tree. */
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  /**
   * Never trust this record: the file changed while it was read, or (set on load) its mtime is not older than the
   * index file's own mtime, so a later change within the same timestamp tick could go unseen (git's "racy clean").
   */
  readonly racy: boolean;
}

/** The store folder stamps saved with an index (see internal/presence.ts). */
export interface StoreStamps {
  /** The store's `objects` folder they describe. */
  readonly objects: string;
  /** Per fan-out folder (`hex[0:2]`), its mtime and inode when every digest of the index in it was seen there. */
  readonly fans: ReadonlyMap<string, { readonly mtimeMs: number; readonly ino: number }>;
  /**
   * Every object the index names (files and folder trees) had a "last used" mtime at least this recent when the
   * index was saved (0: not known). Lets an unchanged write-tree skip refreshing them (see internal/presence.ts).
   */
  readonly usedAtMs: number;
}

// Binary: the magic line, a flags byte (1: folder records carry their tree digests), a u32 length and the store
// stamps (u16 path length, the objects path, usedAtMs f64, then per fan-out folder: fan u8, mtimeMs f64, ino f64;
// version 3 had no usedAtMs), then per
// record a fixed 36-byte head (type u8, racy u8, digest length u8, 0 u8, mode u32, path length u32, size f64,
// mtimeMs f64, ino f64; little-endian) followed by the path (UTF-8) and the digest (ASCII). Parsed with offsets and
// no per-field strings: loading is a measurable part of an unchanged write-tree. Versions 3 (stamps without
// usedAtMs) and 2 (no flags, no stamps) are still read.
const MAGIC = Buffer.from('fsw-tree-index 4\n', 'latin1');
const MAGIC_V3 = Buffer.from('fsw-tree-index 3\n', 'latin1');
const MAGIC_V2 = Buffer.from('fsw-tree-index 2\n', 'latin1');
const FAN_BYTES = 17;
const HEAD = 36;
const TYPE_CODE = { file: 1, dir: 2, symlink: 3 } as const;
const CODE_TYPE: readonly (IndexRecord['type'] | undefined)[] = [undefined, 'file', 'dir', 'symlink'];

/** The digest as stored: one length byte holds every digest we write; a longer one is dropped (never trusted). */
function digestOf(record: IndexRecord): string {
  return record.digest.length > 255 ? '' : record.digest;
}

/** The index path of a directory: `<dir>/.fstree/index`. */
export function indexPath(dir: string): string {
  return join(dir, INDEX_DIR, 'index');
}

/**
 * What `<dir>/.fstree` is, seen with `lstat` (never followed): a real folder, nothing, or something else (a symlink,
 * a file, ...), which the index is never read from or written through: a symlink could lead outside `dir`.
 */
export async function indexFolderState(dir: string): Promise<'dir' | 'missing' | 'other'> {
  try {
    return (await lstat(join(dir, INDEX_DIR))).isDirectory() ? 'dir' : 'other';
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT') return 'missing';
    // ENOTDIR, EACCES, ...: no index to read, none to write.
    return 'other';
  }
}

/**
 * Loads `<dir>/.fstree/index`. A missing, unreadable or malformed index is an empty one: the index is a cache,
 * and losing it only costs re-hashing.
 */
export async function loadIndex(dir: string): Promise<Map<string, IndexRecord>> {
  const view = await loadIndexView(dir);
  const records = new Map<string, IndexRecord>();
  for (let i = 0; i < view.count; i++) records.set(view.path(i), view.record(i));
  return records;
}

/** {@link loadIndex} as an {@link IndexView}, with the store stamps a write-tree saved. */
export async function loadIndexView(dir: string): Promise<IndexView> {
  let bytes: Buffer;
  let indexMtimeMs: number;
  if ((await indexFolderState(dir)) !== 'dir') return IndexView.empty();
  try {
    // O_NOFOLLOW: an `index` that is a symlink is no index of ours.
    const handle = await open(indexPath(dir), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      // Both times come from the same filesystem clock, whatever its granularity.
      indexMtimeMs = (await handle.stat()).mtimeMs;
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch {
    return IndexView.empty();
  }
  if (isFstreeIndex(bytes)) {
    const records = parseFstreeIndex(bytes);
    return records ? IndexView.parse(encodeIndex(records).bytes, indexMtimeMs) : IndexView.empty();
  }
  return IndexView.parse(bytes, indexMtimeMs);
}

// The index the fstree C++ tool keeps at the same path (`.fstree/index`), as it writes it after a write-tree or a
// checkout (read from files it wrote): u16 magic 0x3ee3, u16 version 1, then per path: u64 path length and the path
// (relative, `/`-separated), u64 digest length and the digest string, u32 status (permission bits | 1<<24 file,
// 2<<24 folder, 4<<24 symlink), i64 mtime in nanoseconds, and for a symlink a u64 length and its target; all
// little-endian. It has no sizes or inodes, so its file records are never trusted to skip hashing; what it gives
// is which folders and files that tool wrote, so that a checkout over its work updates them instead of refusing.
const FSTREE_INDEX_HEAD = Buffer.from([0xe3, 0x3e, 0x01, 0x00]);
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

function isFstreeIndex(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes.subarray(0, 4).equals(FSTREE_INDEX_HEAD);
}

/** The records of an fstree index, or `undefined` when it is malformed. */
function parseFstreeIndex(bytes: Buffer): [string, IndexRecord][] | undefined {
  const records: [string, IndexRecord][] = [];
  let at = 4;
  const length = (): number | undefined => {
    if (at + 8 > bytes.length) return undefined;
    const n = bytes.readBigUInt64LE(at);
    at += 8;
    return n > BigInt(bytes.length - at) ? undefined : Number(n);
  };
  while (at < bytes.length) {
    const pathLength = length();
    if (pathLength === undefined) return undefined;
    const path = bytes.toString('utf8', at, at + pathLength);
    at += pathLength;
    const digestLength = length();
    if (digestLength === undefined) return undefined;
    const digest = bytes.toString('latin1', at, at + digestLength);
    at += digestLength;
    if (at + 12 > bytes.length) return undefined;
    const status = bytes.readUInt32LE(at);
    const mtimeNs = bytes.readBigInt64LE(at + 4);
    at += 12;
    const kind = status >>> 24;
    const type = kind === 1 ? 'file' : kind === 2 ? 'dir' : kind === 4 ? 'symlink' : undefined;
    if (type === 'symlink') {
      const targetLength = length();
      if (targetLength === undefined) return undefined;
      at += targetLength;
    }
    if (type === undefined || path === '') continue;
    const mode = (status & 0o7777) | (type === 'file' ? S_IFREG : type === 'dir' ? S_IFDIR : S_IFLNK);
    records.push([
      path,
      {
        type,
        digest: type === 'file' ? digest : '',
        mode,
        size: 0,
        mtimeMs: Number(mtimeNs) / 1e6,
        ino: 0,
        racy: true,
      },
    ]);
  }
  return records;
}

const FAN_NAMES: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hexValue(c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
}

/** Matches ASCII `text` against `bytes[from + k...]` (within `length`): the next `k`, or -1. */
function asciiPrefix(bytes: Buffer, from: number, length: number, k: number, text: string): number {
  if (k + text.length > length) return -1;
  for (let c = 0; c < text.length; c++) {
    const code = text.charCodeAt(c);
    if (code >= 0x80 || bytes[from + k + c] !== code) return -1;
  }
  return k + text.length;
}

/**
 * A loaded index read in place: records are found by number and their fields read from the file's bytes, so an
 * unchanged write-tree makes no object or string per record. Records are looked up in the order they were saved
 * (the order of the scan) with a cursor; a map of all paths is built only when a lookup misses it.
 */
export class IndexView {
  private cursor = 0;
  private byPath: Map<string, number> | undefined;

  private constructor(
    private readonly bytes: Buffer,
    /** Start of each record. */
    private readonly starts: readonly number[],
    private readonly indexMtimeMs: number,
    /** Folder records carry tree digests. */
    private readonly trees: boolean,
    readonly stamps: StoreStamps | undefined,
  ) {}

  /** An index with no records. */
  static empty(): IndexView {
    return new IndexView(Buffer.alloc(0), [], 0, false, undefined);
  }

  /** Parses index bytes (see the format above); anything malformed gives an empty index. */
  static parse(bytes: Buffer, indexMtimeMs: number): IndexView {
    if (bytes.length < MAGIC.length) return IndexView.empty();
    let at = MAGIC.length;
    let trees = false;
    let stamps: StoreStamps | undefined;
    const head = bytes.subarray(0, MAGIC.length);
    const v3 = head.equals(MAGIC_V3);
    if (v3 || head.equals(MAGIC)) {
      if (at + 5 > bytes.length) return IndexView.empty();
      trees = bytes[at] === 1;
      const length = bytes.readUInt32LE(at + 1);
      at += 5;
      if (at + length > bytes.length) return IndexView.empty();
      stamps = parseStamps(bytes.subarray(at, at + length), !v3);
      at += length;
    } else if (!head.equals(MAGIC_V2)) {
      return IndexView.empty();
    }
    const starts: number[] = [];
    while (at < bytes.length) {
      if (at + HEAD > bytes.length) return IndexView.empty();
      const end = at + HEAD + bytes.readUInt32LE(at + 8) + bytes[at + 2]!;
      if (CODE_TYPE[bytes[at]!] === undefined || end > bytes.length) return IndexView.empty();
      starts.push(at);
      at = end;
    }
    return new IndexView(bytes, starts, indexMtimeMs, trees, stamps);
  }

  /** Number of records. */
  get count(): number {
    return this.starts.length;
  }

  type(i: number): IndexRecord['type'] {
    return CODE_TYPE[this.bytes[this.starts[i]!]!]!;
  }

  path(i: number): string {
    const at = this.starts[i]!;
    return this.bytes.toString('utf8', at + HEAD, at + HEAD + this.bytes.readUInt32LE(at + 8));
  }

  /** The record's digest; a folder's only when the index vouches for its trees. */
  digest(i: number): string {
    const at = this.starts[i]!;
    const length = this.bytes[at + 2]!;
    if (length === 0 || (!this.trees && this.type(i) === 'dir')) return '';
    const from = at + HEAD + this.bytes.readUInt32LE(at + 8);
    return this.bytes.toString('latin1', from, from + length);
  }

  mode(i: number): number {
    return this.bytes.readUInt32LE(this.starts[i]! + 4);
  }

  /** The record as an object. */
  record(i: number): IndexRecord {
    const at = this.starts[i]!;
    const mtimeMs = this.bytes.readDoubleLE(at + 20);
    return {
      type: this.type(i),
      digest: this.digest(i),
      mode: this.mode(i),
      size: this.bytes.readDoubleLE(at + 12),
      mtimeMs,
      ino: this.bytes.readDoubleLE(at + 28),
      racy: this.bytes[at + 1] === 1 || mtimeMs >= this.indexMtimeMs,
    };
  }

  /**
   * Whether record `i` is a trusted file record with a digest and the same size, mtime, mode and inode as `st`
   * (see {@link recordMatches}).
   */
  fileMatches(
    i: number,
    st: { readonly size: number; readonly mtimeMs: number; readonly mode: number; readonly ino: number },
  ): boolean {
    const b = this.bytes;
    const at = this.starts[i]!;
    const mtimeMs = b.readDoubleLE(at + 20);
    return (
      b[at] === TYPE_CODE.file &&
      b[at + 1] === 0 &&
      mtimeMs < this.indexMtimeMs &&
      b[at + 2] !== 0 &&
      mtimeMs === st.mtimeMs &&
      b.readDoubleLE(at + 12) === st.size &&
      b.readUInt32LE(at + 4) === st.mode &&
      b.readDoubleLE(at + 28) === st.ino
    );
  }

  /** Whether every lookup so far was found at the cursor (records in the order they were asked for). */
  get inOrder(): boolean {
    return this.byPath === undefined;
  }

  /** Whether record `i`'s stored digest is `digest` (ASCII), compared in place: no string per record. */
  hasDigest(i: number, digest: string): boolean {
    const b = this.bytes;
    const at = this.starts[i]!;
    const length = b[at + 2]!;
    if (length === 0 || length !== digest.length) return false;
    return asciiPrefix(b, at + HEAD + b.readUInt32LE(at + 8), length, 0, digest) === length;
  }

  /** The fan-out folder (`hex[0:2]`) of a `blake3:` digest of record `i`, or `undefined` for any other digest. */
  fan(i: number): string | undefined {
    const b = this.bytes;
    const at = this.starts[i]!;
    if (b[at + 2] !== 71) return undefined;
    const from = at + HEAD + b.readUInt32LE(at + 8);
    // `blake3:` then two lowercase hex digits.
    if (b[from] !== 98 || b[from + 6] !== 58) return undefined;
    const hi = hexValue(b[from + 7]!);
    const lo = hexValue(b[from + 8]!);
    return hi < 0 || lo < 0 ? undefined : FAN_NAMES[hi * 16 + lo];
  }

  /** The number of the record of `path` (`dir/name`, or `name` when `dir` is `''`), or -1. */
  find(path: string, dir?: string, name?: string): number {
    const i = this.cursor;
    if (
      i < this.starts.length &&
      (dir === undefined || name === undefined ? this.pathIs(i, '', path) : this.pathIs(i, dir, name))
    ) {
      this.cursor = i + 1;
      return i;
    }
    if (this.byPath === undefined) {
      this.byPath = new Map();
      for (let j = 0; j < this.starts.length; j++) this.byPath.set(this.path(j), j);
    }
    const j = this.byPath.get(path);
    if (j === undefined) return -1;
    this.cursor = j + 1;
    return j;
  }

  /**
   * Whether record `i`'s path is `dir/name` (`name` for `dir` `''`), compared in place: the two parts are flat
   * strings, while the joined path would need flattening for a character-wise compare.
   */
  private pathIs(i: number, dir: string, name: string): boolean {
    const b = this.bytes;
    const at = this.starts[i]!;
    const length = b.readUInt32LE(at + 8);
    const from = at + HEAD;
    let k = asciiPrefix(b, from, length, 0, dir);
    if (k >= 0 && dir !== '') k = k < length && b[from + k] === 47 ? k + 1 : -1;
    if (k >= 0) k = asciiPrefix(b, from, length, k, name);
    if (k >= 0) return k === length;
    // Non-ASCII names (or a mismatch): compare the decoded path.
    return b.toString('utf8', from, from + length) === (dir === '' ? name : `${dir}/${name}`);
  }
}

function parseStamps(block: Buffer, withUsedAt: boolean): StoreStamps | undefined {
  if (block.length < 2) return undefined;
  const pathLength = block.readUInt16LE(0);
  const usedAt = 2 + pathLength;
  const start = withUsedAt ? usedAt + 8 : usedAt;
  if (start > block.length || (block.length - start) % FAN_BYTES !== 0) return undefined;
  const fans = new Map<string, { mtimeMs: number; ino: number }>();
  for (let at = start; at < block.length; at += FAN_BYTES) {
    fans.set(block[at]!.toString(16).padStart(2, '0'), {
      mtimeMs: block.readDoubleLE(at + 1),
      ino: block.readDoubleLE(at + 9),
    });
  }
  return {
    objects: block.toString('utf8', 2, usedAt),
    fans,
    usedAtMs: withUsedAt ? block.readDoubleLE(usedAt) : 0,
  };
}

function encodeStamps(stamps: StoreStamps | undefined): Buffer {
  if (stamps === undefined) return Buffer.alloc(0);
  const path = Buffer.from(stamps.objects, 'utf8');
  if (path.length > 0xffff) return Buffer.alloc(0);
  const block = Buffer.alloc(2 + path.length + 8 + stamps.fans.size * FAN_BYTES);
  block.writeUInt16LE(path.length, 0);
  path.copy(block, 2);
  block.writeDoubleLE(stamps.usedAtMs, 2 + path.length);
  let at = 2 + path.length + 8;
  for (const [fan, s] of stamps.fans) {
    block[at] = Number.parseInt(fan, 16);
    block.writeDoubleLE(s.mtimeMs, at + 1);
    block.writeDoubleLE(s.ino, at + 9);
    at += FAN_BYTES;
  }
  return block;
}

/** What a write-tree saves beside its records. */
export interface IndexExtras {
  /** Folder records carry the digests of their trees (only a write-tree can vouch for them). */
  readonly trees: boolean;
  readonly stamps: StoreStamps | undefined;
}

/** The index file's bytes (see the format above), and the newest mtime of a trusted file record. */
function encodeIndex(
  records: Iterable<readonly [string, IndexRecord]>,
  extras: IndexExtras = { trees: false, stamps: undefined },
): { bytes: Buffer; newest: number } {
  const stampBlock = encodeStamps(extras.stamps);
  let size = MAGIC.length + 5 + stampBlock.length;
  let newest = 0;
  for (const [path, r] of records) {
    if (r.type === 'file' && !r.racy && r.mtimeMs > newest) newest = r.mtimeMs;
    size += HEAD + Buffer.byteLength(path, 'utf8') + digestOf(r).length;
  }
  const bytes = Buffer.allocUnsafe(size);
  MAGIC.copy(bytes, 0);
  let at = MAGIC.length;
  bytes[at] = extras.trees ? 1 : 0;
  bytes.writeUInt32LE(stampBlock.length, at + 1);
  stampBlock.copy(bytes, at + 5);
  at += 5 + stampBlock.length;
  for (const [path, r] of records) {
    bytes[at] = TYPE_CODE[r.type];
    bytes[at + 1] = r.racy ? 1 : 0;
    const digest = digestOf(r);
    bytes[at + 2] = digest.length;
    bytes[at + 3] = 0;
    bytes.writeUInt32LE(r.mode >>> 0, at + 4);
    bytes.writeDoubleLE(r.size, at + 12);
    bytes.writeDoubleLE(r.mtimeMs, at + 20);
    bytes.writeDoubleLE(r.ino, at + 28);
    const pathLength = bytes.write(path, at + HEAD, 'utf8');
    bytes.writeUInt32LE(pathLength, at + 8);
    at += HEAD + pathLength;
    at += bytes.write(digest, at, 'latin1');
  }
  return { bytes, newest };
}

/**
 * Writes the index atomically (temp + rename). Returns false, writing nothing, when `.fstree` cannot be created
 * (read-only `dir`) or is not a real folder: a symlink (never written through: it could lead outside `dir`), a file
 * or anything else of the user's is left as it is, and the next run re-hashes.
 */
export async function saveIndex(
  dir: string,
  records: Iterable<readonly [string, IndexRecord]>,
  extras: IndexExtras = { trees: false, stamps: undefined },
): Promise<boolean> {
  const folder = join(dir, INDEX_DIR);
  let state = await indexFolderState(dir);
  if (state === 'missing') {
    try {
      // Not recursive: `dir` exists, and a recursive mkdir would accept a symlink to a folder made meanwhile.
      await mkdir(folder);
      state = 'dir';
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return false;
      if (code !== 'EEXIST') {
        throw fromErrno(error, { path: folder, family: TreeError, action: 'create index folder' });
      }
      // Made by someone else meanwhile: only a real folder will do.
      state = await indexFolderState(dir);
    }
  }
  if (state !== 'dir') return false;
  const { bytes, newest } = encodeIndex(records, extras);
  // A record is trusted only when older than the index file (the racy-clean rule). Files changed a moment ago share
  // its timestamp tick; on filesystems with fine timestamps one tick of waiting (<= 10 ms on a coarse kernel clock)
  // makes the index newer, so that the next run can skip them. On 1-2 s filesystems they just stay untrusted.
  const wait = newest + 15 - Date.now();
  if (wait > 0 && wait <= 50) await new Promise((resolve) => setTimeout(resolve, wait));
  const temp = join(folder, `.index-${process.pid}-${randomBytes(4).toString('hex')}`);
  const final = indexPath(dir);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
    await rename(temp, final);
  } catch (error) {
    await unlink(temp).catch(() => {});
    const code = (error as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return false;
    throw fromErrno(error, { path: final, family: TreeError, action: 'write index' });
  }
  return true;
}

/** True when a file's current stat matches the index record closely enough to reuse its digest unread. */
export function recordMatches(
  record: IndexRecord | undefined,
  st: { readonly size: number; readonly mtimeMs: number; readonly mode: number; readonly ino: number },
): record is IndexRecord {
  return (
    record !== undefined &&
    record.type === 'file' &&
    !record.racy &&
    record.digest !== '' &&
    record.size === st.size &&
    record.mtimeMs === st.mtimeMs &&
    record.mode === st.mode &&
    record.ino === st.ino
  );
}
