import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DedupError, fromErrno } from '@fsw/errors';
import { crypto } from './internal/builtins.js';
import { type DigestKey, keyOfHex } from './internal/hash-one.js';
import type { DedupFile, DigestStore } from './types.js';

interface Entry {
  size: number;
  mtimeMs: number;
  // Most files have one digest: it lives in the entry itself, further ones in `more` ([kind, digest, kind, ...]).
  // A few objects fewer per file of the tree is what keeps loading a cache of 200,000 files fast.
  kind: string;
  digest: string;
  more: string[] | undefined;
}

/**
 * Digests for one run without a cache file: per kind, a map from the file object to its digest. No entry object
 * per file (and no size or mtime to check: the files do not change identity within a run), which over 200,000 files
 * is noticeably less work for the garbage collector than {@link DigestCache}.
 */
export class MemoryDigests implements DigestStore {
  readonly #byKind = new Map<string, Map<DedupFile, string>>();
  #lastKind = '';
  #last: Map<DedupFile, string> | undefined;

  #of(kind: string): Map<DedupFile, string> | undefined {
    if (kind === this.#lastKind && this.#last !== undefined) return this.#last;
    const map = this.#byKind.get(kind);
    if (map !== undefined) {
      this.#lastKind = kind;
      this.#last = map;
    }
    return map;
  }

  get(file: DedupFile, kind: string): string | undefined {
    return this.#of(kind)?.get(file);
  }

  set(file: DedupFile, kind: string, digest: string): void {
    let map = this.#of(kind);
    if (map === undefined) {
      map = new Map();
      this.#byKind.set(kind, map);
    }
    map.set(file, digest);
  }
}

/**
 * The default location of the hash cache: `$XDG_CACHE_HOME/fsw/dedup-cache.bin`, else
 * `~/.cache/fsw/dedup-cache.bin`.
 */
export function defaultCachePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'fsw', 'dedup-cache.bin');
}

/** The first bytes of a cache file; version 1 (text) files are replaced without being read. */
const MAGIC = 'fsw-dedup-cache 2\n';
const MAGIC_V1 = 'fsw-dedup-cache 1\n';
/** Magic (18 bytes), padding to 24, then four u32: record count, kinds' JSON length, digest blob length, 0. */
const HEADER = 40;
/** Numbers per record: dev, ino, size, mtimeMs. */
const RECORD = 4;
const TRAILER = 32;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** A record of this run, or one loaded and then updated. */
interface Saved {
  dev: number;
  ino: number;
  entry: Entry;
}

/**
 * Digests keyed by dev+ino and valid only for the size and mtime they were taken at. In memory for one run, and
 * optionally loaded from and saved to a binary file: a header, the records (dev, ino, size, mtimeMs as float64,
 * sorted by dev and ino), the offsets of each record's digests, the digests, and a SHA-256 of everything before it,
 * so a truncated or edited file is detected and rebuilt instead of trusted. Loading builds no object per record: the
 * records are searched in place (binary search), and a digest string is made only when asked for.
 */
export class DigestCache implements DigestStore {
  // The entries of this run, keyed by the file object. Files without an inode number live here only.
  readonly #byFile = new Map<DedupFile, Entry>();
  #records = new Float64Array(0);
  #offsets = new Uint32Array(1);
  #blob: Buffer = Buffer.alloc(0);
  #kinds: string[] = [];
  /** Loaded records replaced by an entry of this run. */
  #superseded = new Uint8Array(0);
  #dirty = false;
  /** True when a cache file existed but was unreadable or corrupt, and was therefore ignored. */
  rebuilt = false;

  /** The index of the loaded record of `file`'s dev and ino, or -1. */
  #find(file: DedupFile): number {
    if (file.ino === 0) return -1;
    const records = this.#records;
    let lo = 0;
    let hi = records.length / RECORD - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = mid * RECORD;
      const dev = records[at]!;
      const ino = records[at + 1]!;
      if (dev === file.dev && ino === file.ino) return mid;
      if (dev < file.dev || (dev === file.dev && ino < file.ino)) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The loaded record `index` is still valid for `file` (same size and mtime, not replaced this run). */
  #valid(index: number, file: DedupFile): boolean {
    const at = index * RECORD;
    return (
      index >= 0 &&
      this.#superseded[index] === 0 &&
      this.#records[at + 2] === file.size &&
      this.#records[at + 3] === file.mtimeMs
    );
  }

  /** Calls `each(kind, digest)` for the digests of loaded record `index` until it returns true. */
  #digests(index: number, each: (kind: string, from: number, to: number) => boolean): void {
    const blob = this.#blob;
    let at = this.#offsets[index]!;
    const end = this.#offsets[index + 1]!;
    while (at + 4 <= end) {
      const kind = this.#kinds[blob.readUInt16LE(at)];
      const length = blob.readUInt16LE(at + 2);
      if (kind !== undefined && each(kind, at + 4, at + 4 + length)) return;
      at += 4 + length;
    }
  }

  get(file: DedupFile, kind: string): string | undefined {
    const entry = this.#byFile.get(file);
    if (entry !== undefined) return validDigest(entry, file, kind);
    const at = this.#at(file, kind);
    if (at < 0) return undefined;
    const blob = this.#blob;
    return blob.toString('utf8', at + 4, at + 4 + (blob[at + 2]! | (blob[at + 3]! << 8)));
  }

  /**
   * {@link DigestCache.get} as a grouping key: with `numeric`, a CRC-32's hex digits are read straight from the loaded
   * bytes into a number (no string per file: a cached run looks up every file of the tree).
   */
  key(file: DedupFile, kind: string, numeric: boolean): DigestKey | undefined {
    if (!numeric || this.#byFile.has(file)) {
      const digest = this.get(file, kind);
      return digest !== undefined && numeric ? keyOfHex(digest) : digest;
    }
    const at = this.#at(file, kind);
    if (at < 0) return undefined;
    const blob = this.#blob;
    const end = at + 4 + (blob[at + 2]! | (blob[at + 3]! << 8));
    let value = 0;
    for (let i = at + 4; i < end; i++) {
      const c = blob[i]!;
      const digit = c <= 57 ? c - 48 : (c | 32) - 87;
      if (digit < 0 || digit > 15) return keyOfHex(blob.toString('latin1', at + 4, end));
      value = value * 16 + digit;
    }
    return value;
  }

  /** Where the loaded digest of `kind` of `file` starts in the blob (its 4-byte header), or -1. */
  #at(file: DedupFile, kind: string): number {
    const index = this.#find(file);
    if (!this.#valid(index, file)) return -1;
    const blob = this.#blob;
    const end = this.#offsets[index + 1]!;
    for (let at = this.#offsets[index]!; at + 4 <= end; ) {
      if (this.#kinds[blob[at]! | (blob[at + 1]! << 8)] === kind) return at;
      at += 4 + (blob[at + 2]! | (blob[at + 3]! << 8));
    }
    return -1;
  }

  set(file: DedupFile, kind: string, digest: string): void {
    this.#dirty = true;
    const known = this.#byFile.get(file);
    if (known !== undefined && known.size === file.size && known.mtimeMs === file.mtimeMs) {
      addDigest(known, kind, digest);
      return;
    }
    const entry: Entry = { size: file.size, mtimeMs: file.mtimeMs, kind, digest, more: undefined };
    const index = this.#find(file);
    if (index >= 0) {
      // The digests of other kinds still valid for this file are kept beside the new one.
      if (this.#valid(index, file)) {
        this.#digests(index, (k, from, to) => {
          if (k !== kind) addDigest(entry, k, this.#blob.toString('utf8', from, to));
          return false;
        });
      }
      this.#superseded[index] = 1;
    }
    this.#byFile.set(file, entry);
  }

  /**
   * Loads a cache file written by {@link DigestCache.save} with one read. A missing file (or one of the older text
   * format) is an empty cache; a corrupt one is ignored (and `rebuilt` set).
   * @throws DedupError `E_PERMISSION` (or another errno code) when the file exists but cannot be read
   */
  static async load(path: string): Promise<DigestCache> {
    const cache = new DigestCache();
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') return cache;
      throw fromErrno(error, { path, family: DedupError, action: 'read the hash cache' });
    }
    if (data.subarray(0, MAGIC_V1.length).toString('latin1') === MAGIC_V1) {
      cache.#dirty = true;
      return cache;
    }
    if (!cache.#parse(data)) {
      cache.#records = new Float64Array(0);
      cache.#offsets = new Uint32Array(1);
      cache.#blob = Buffer.alloc(0);
      cache.#kinds = [];
      cache.rebuilt = true;
      cache.#dirty = true;
    }
    return cache;
  }

  #parse(file: Buffer): boolean {
    if (file.length < HEADER + TRAILER || file.subarray(0, MAGIC.length).toString('latin1') !== MAGIC)
      return false;
    const body = file.subarray(0, file.length - TRAILER);
    // The checksum vouches for every byte below, which is why they are read without further checks.
    if (
      !crypto()
        .createHash('sha256')
        .update(body)
        .digest()
        .equals(file.subarray(file.length - TRAILER))
    )
      return false;
    // A copy at offset 0 of its own buffer (never a slice of Buffer's pool): a Float64Array view needs 8-byte
    // alignment.
    const own = new Uint8Array(body.length);
    own.set(body);
    const data = Buffer.from(own.buffer, 0, own.length);
    const count = data.readUInt32LE(24);
    const kindsLength = data.readUInt32LE(28);
    const blobLength = data.readUInt32LE(32);
    const kindsAt = HEADER;
    const recordsAt = align8(kindsAt + kindsLength);
    const offsetsAt = recordsAt + count * RECORD * 8;
    const blobAt = align8(offsetsAt + (count + 1) * 4);
    if (blobAt + blobLength !== data.length) return false;
    let kinds: unknown;
    try {
      kinds = JSON.parse(data.toString('utf8', kindsAt, kindsAt + kindsLength));
    } catch {
      return false;
    }
    if (!Array.isArray(kinds) || !kinds.every((k) => typeof k === 'string')) return false;
    this.#kinds = kinds as string[];
    this.#records = new Float64Array(data.buffer, data.byteOffset + recordsAt, count * RECORD);
    this.#offsets = new Uint32Array(data.buffer, data.byteOffset + offsetsAt, count + 1);
    this.#blob = data.subarray(blobAt);
    this.#superseded = new Uint8Array(count);
    return true;
  }

  /**
   * Writes the cache atomically (a temporary file renamed over the old one); does nothing when nothing changed.
   * @throws DedupError with the errno code (`E_PERMISSION`, `E_NO_SPACE`...) when it cannot be written
   */
  async save(path: string): Promise<void> {
    if (!this.#dirty) return;
    const data = this.#serialize();
    const tmp = `${path}.${process.pid}.${crypto().randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, data);
      await rename(tmp, path);
      this.#dirty = false;
    } catch (error) {
      await rm(tmp, { force: true });
      throw fromErrno(error, { path, family: DedupError, action: 'write the hash cache' });
    }
  }

  #serialize(): Buffer {
    // The entries of this run (by dev and ino: the last one wins), then the loaded records they did not replace.
    const fresh: Saved[] = [];
    for (const [file, entry] of this.#byFile)
      if (file.ino !== 0) fresh.push({ dev: file.dev, ino: file.ino, entry });
    fresh.sort((a, b) => a.dev - b.dev || a.ino - b.ino);
    const kinds = new Map<string, number>(this.#kinds.map((k, i) => [k, i]));
    const kindOf = (kind: string) => {
      let index = kinds.get(kind);
      if (index === undefined) {
        index = kinds.size;
        kinds.set(kind, index);
      }
      return index;
    };
    const loaded = this.#records.length / RECORD;
    const records: number[] = [];
    const parts: Buffer[] = [];
    const offsets: number[] = [0];
    let blobLength = 0;
    const pushDigest = (kind: string, digest: Buffer) => {
      if (digest.length > 0xffff) return;
      const head = Buffer.allocUnsafe(4);
      head.writeUInt16LE(kindOf(kind), 0);
      head.writeUInt16LE(digest.length, 2);
      parts.push(head, digest);
      blobLength += 4 + digest.length;
    };
    const pushFresh = (saved: Saved) => {
      const { entry } = saved;
      records.push(saved.dev, saved.ino, entry.size, entry.mtimeMs);
      pushDigest(entry.kind, Buffer.from(entry.digest));
      const more = entry.more ?? [];
      for (let i = 0; i < more.length; i += 2) pushDigest(more[i]!, Buffer.from(more[i + 1]!));
      offsets.push(blobLength);
    };
    const pushLoaded = (index: number) => {
      const at = index * RECORD;
      records.push(
        this.#records[at]!,
        this.#records[at + 1]!,
        this.#records[at + 2]!,
        this.#records[at + 3]!,
      );
      const from = this.#offsets[index]!;
      const to = this.#offsets[index + 1]!;
      parts.push(this.#blob.subarray(from, to));
      blobLength += to - from;
      offsets.push(blobLength);
    };
    // Merge the two sorted lists.
    let i = 0;
    let j = 0;
    while (i < fresh.length || j < loaded) {
      if (j < loaded && this.#superseded[j] === 1) {
        j++;
        continue;
      }
      const f = fresh[i];
      if (
        f !== undefined &&
        i + 1 < fresh.length &&
        fresh[i + 1]!.dev === f.dev &&
        fresh[i + 1]!.ino === f.ino
      ) {
        i++;
        continue;
      }
      const at = j * RECORD;
      const takeFresh =
        f !== undefined &&
        (j >= loaded ||
          f.dev < this.#records[at]! ||
          (f.dev === this.#records[at]! && f.ino <= this.#records[at + 1]!));
      if (takeFresh) {
        if (j < loaded && f.dev === this.#records[at]! && f.ino === this.#records[at + 1]!) j++;
        pushFresh(f);
        i++;
      } else pushLoaded(j++);
    }
    const count = records.length / RECORD;
    const kindsJson = Buffer.from(JSON.stringify([...kinds.keys()]));
    const recordsAt = align8(HEADER + kindsJson.length);
    const offsetsAt = recordsAt + count * RECORD * 8;
    const blobAt = align8(offsetsAt + (count + 1) * 4);
    const out = Buffer.alloc(blobAt + blobLength + TRAILER);
    out.write(MAGIC, 0, 'latin1');
    out.writeUInt32LE(count, 24);
    out.writeUInt32LE(kindsJson.length, 28);
    out.writeUInt32LE(blobLength, 32);
    kindsJson.copy(out, HEADER);
    Buffer.from(Float64Array.from(records).buffer).copy(out, recordsAt);
    Buffer.from(Uint32Array.from(offsets).buffer).copy(out, offsetsAt);
    let at = blobAt;
    for (const part of parts) at += part.copy(out, at);
    const body = out.subarray(0, blobAt + blobLength);
    crypto()
      .createHash('sha256')
      .update(body)
      .digest()
      .copy(out, blobAt + blobLength);
    return out;
  }
}

/** The digest of `kind` in `entry`, if the entry is still valid for `file`'s size and mtime. */
function validDigest(entry: Entry, file: DedupFile, kind: string): string | undefined {
  if (entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) return undefined;
  return digestIn(entry, kind);
}

function digestIn(entry: Entry, kind: string): string | undefined {
  if (entry.kind === kind) return entry.digest;
  const more = entry.more;
  if (more === undefined) return undefined;
  for (let i = 0; i < more.length; i += 2) if (more[i] === kind) return more[i + 1];
  return undefined;
}

function addDigest(entry: Entry, kind: string, digest: string): void {
  if (entry.kind === kind) {
    entry.digest = digest;
    return;
  }
  if (entry.more === undefined) entry.more = [];
  const more = entry.more;
  for (let i = 0; i < more.length; i += 2) {
    if (more[i] === kind) {
      more[i + 1] = digest;
      return;
    }
  }
  more.push(kind, digest);
}
