import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DedupError, fromErrno } from '@fsw/errors';
import type { DedupFile, DigestStore } from './types.js';

const MAGIC = 'fsw-dedup-cache 1';

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
 * The default location of the hash cache: `$XDG_CACHE_HOME/fsw/dedup-cache.txt`, else
 * `~/.cache/fsw/dedup-cache.txt`.
 */
export function defaultCachePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'fsw', 'dedup-cache.txt');
}

/**
 * Digests keyed by dev+ino and valid only for the size and mtime they were taken at. In memory for one run, and
 * optionally loaded from and saved to a text file: a header line, one line per file
 * (`dev ino size mtimeMs kind=hex...`) and a trailer with the line count and a SHA-256 of everything before it, so
 * a truncated or edited file is detected and rebuilt instead of trusted.
 */
export class DigestCache implements DigestStore {
  // dev -> ino -> entry, with numeric keys: what was loaded, and what is saved.
  readonly #byDev = new Map<number, Map<number, Entry>>();
  // The entries of this run, keyed by the file object: one lookup by identity per access, where dev -> ino costs
  // two hashed lookups of (often large) numbers. Files without an inode number live here only.
  readonly #byFile = new Map<DedupFile, Entry>();
  #dirty = false;
  /** True when a cache file existed but was unreadable or corrupt, and was therefore ignored. */
  rebuilt = false;

  #entry(file: DedupFile): Entry | undefined {
    const known = this.#byFile.get(file);
    if (known !== undefined || this.#byDev.size === 0 || file.ino === 0) return known;
    const loaded = this.#byDev.get(file.dev)?.get(file.ino);
    if (loaded !== undefined) this.#byFile.set(file, loaded);
    return loaded;
  }

  #put(dev: number, ino: number, entry: Entry): void {
    let inodes = this.#byDev.get(dev);
    if (inodes === undefined) {
      inodes = new Map();
      this.#byDev.set(dev, inodes);
    }
    inodes.set(ino, entry);
  }

  get(file: DedupFile, kind: string): string | undefined {
    const entry = this.#entry(file);
    if (entry === undefined || entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) return undefined;
    if (entry.kind === kind) return entry.digest;
    const more = entry.more;
    if (more === undefined) return undefined;
    for (let i = 0; i < more.length; i += 2) if (more[i] === kind) return more[i + 1];
    return undefined;
  }

  set(file: DedupFile, kind: string, digest: string): void {
    this.#dirty = true;
    const entry = this.#entry(file);
    if (entry === undefined || entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) {
      this.#byFile.set(file, { size: file.size, mtimeMs: file.mtimeMs, kind, digest, more: undefined });
    } else addDigest(entry, kind, digest);
  }

  /**
   * Loads a cache file written by {@link DigestCache.save}. A missing file is an empty cache; a corrupt one is
   * ignored (and `rebuilt` set).
   * @throws DedupError `E_PERMISSION` (or another errno code) when the file exists but cannot be read
   */
  static async load(path: string): Promise<DigestCache> {
    const cache = new DigestCache();
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') return cache;
      throw fromErrno(error, { path, family: DedupError, action: 'read the hash cache' });
    }
    if (!cache.#parse(text)) {
      cache.#byDev.clear();
      cache.rebuilt = true;
      cache.#dirty = true;
    }
    return cache;
  }

  #parse(text: string): boolean {
    if (!text.startsWith(`${MAGIC}\n`) || !text.endsWith('\n')) return false;
    const trailerAt = text.lastIndexOf('\nend ', text.length - 2);
    if (trailerAt < 0) return false;
    const trailer = text.slice(trailerAt + 1, -1).split(' ');
    // The checksum vouches for every line below, which is why they are parsed without further checks of the digits.
    if (trailer.length !== 3 || trailer[2] !== sha256(text.slice(0, trailerAt + 1))) return false;
    const kinds = new Map<string, string>();
    let count = 0;
    let at = MAGIC.length + 1;
    while (at <= trailerAt) {
      const end = text.indexOf('\n', at);
      const s1 = text.indexOf(' ', at);
      const s2 = text.indexOf(' ', s1 + 1);
      const s3 = text.indexOf(' ', s2 + 1);
      const s4 = text.indexOf(' ', s3 + 1);
      if (s1 < 0 || s4 < 0 || s4 > end) return false;
      const dev = Number(text.slice(at, s1));
      const ino = Number(text.slice(s1 + 1, s2));
      const size = Number(text.slice(s2 + 1, s3));
      const mtimeMs = Number(text.slice(s3 + 1, s4));
      if (
        !Number.isSafeInteger(dev) ||
        !Number.isSafeInteger(ino) ||
        ino <= 0 ||
        !Number.isSafeInteger(size)
      ) {
        return false;
      }
      if (!Number.isFinite(mtimeMs)) return false;
      let entry: Entry | undefined;
      let field = s4 + 1;
      while (field < end) {
        const space = text.indexOf(' ', field);
        const stop = space < 0 || space > end ? end : space;
        const eq = text.lastIndexOf('=', stop - 1);
        if (eq <= field) return false;
        const name = text.slice(field, eq);
        let kind = kinds.get(name);
        if (kind === undefined) {
          kind = name;
          kinds.set(name, kind);
        }
        const digest = text.slice(eq + 1, stop);
        if (entry === undefined) entry = { size, mtimeMs, kind, digest, more: undefined };
        else addDigest(entry, kind, digest);
        field = stop + 1;
      }
      if (entry === undefined) return false;
      this.#put(dev, ino, entry);
      count++;
      at = end + 1;
    }
    return Number(trailer[1]) === count;
  }

  /**
   * Writes the cache atomically (a temporary file renamed over the old one); does nothing when nothing changed.
   * @throws DedupError with the errno code (`E_PERMISSION`, `E_NO_SPACE`...) when it cannot be written
   */
  async save(path: string): Promise<void> {
    if (!this.#dirty) return;
    for (const [file, entry] of this.#byFile) if (file.ino !== 0) this.#put(file.dev, file.ino, entry);
    const parts: string[] = [`${MAGIC}\n`];
    for (const [dev, inodes] of this.#byDev) {
      for (const [ino, entry] of inodes) {
        let line = `${dev} ${ino} ${entry.size} ${entry.mtimeMs} ${entry.kind}=${entry.digest}`;
        const more = entry.more ?? [];
        for (let i = 0; i < more.length; i += 2) line += ` ${more[i]}=${more[i + 1]}`;
        parts.push(`${line}\n`);
      }
    }
    const body = parts.join('');
    const text = `${body}end ${parts.length - 1} ${sha256(body)}\n`;
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, text);
      await rename(tmp, path);
      this.#dirty = false;
    } catch (error) {
      await rm(tmp, { force: true });
      throw fromErrno(error, { path, family: DedupError, action: 'write the hash cache' });
    }
  }
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

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
