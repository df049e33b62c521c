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
  // Parallel arrays: a file has one to three digests, and this runs once per file of the tree.
  kinds: string[];
  digests: string[];
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
  // dev -> ino -> entry, with numeric keys; files without an inode number are keyed by path, for this run only.
  readonly #byDev = new Map<number, Map<number, Entry>>();
  readonly #byPath = new Map<string, Entry>();
  #dirty = false;
  /** True when a cache file existed but was unreadable or corrupt, and was therefore ignored. */
  rebuilt = false;

  #entry(file: DedupFile): Entry | undefined {
    return file.ino === 0 ? this.#byPath.get(file.path) : this.#byDev.get(file.dev)?.get(file.ino);
  }

  #put(dev: number, ino: number, path: string, entry: Entry): void {
    if (ino === 0) {
      this.#byPath.set(path, entry);
      return;
    }
    let inodes = this.#byDev.get(dev);
    if (inodes === undefined) this.#byDev.set(dev, (inodes = new Map()));
    inodes.set(ino, entry);
  }

  get(file: DedupFile, kind: string): string | undefined {
    const entry = this.#entry(file);
    if (entry === undefined || entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) return undefined;
    const i = entry.kinds.indexOf(kind);
    return i < 0 ? undefined : entry.digests[i];
  }

  set(file: DedupFile, kind: string, digest: string): void {
    let entry = this.#entry(file);
    if (entry === undefined || entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) {
      entry = { size: file.size, mtimeMs: file.mtimeMs, kinds: [], digests: [] };
      this.#put(file.dev, file.ino, file.path, entry);
    }
    const i = entry.kinds.indexOf(kind);
    if (i < 0) {
      entry.kinds.push(kind);
      entry.digests.push(digest);
    } else if (entry.digests[i] !== digest) entry.digests[i] = digest;
    else return;
    this.#dirty = true;
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
    if (!text.startsWith(`${MAGIC}\n`)) return false;
    const trailerAt = text.lastIndexOf('\nend ', text.length - 2);
    if (trailerAt < 0 || !text.endsWith('\n')) return false;
    const body = text.slice(0, trailerAt + 1);
    const trailer = text.slice(trailerAt + 1, -1).split(' ');
    if (trailer.length !== 3 || trailer[2] !== sha256(body)) return false;
    const lines = body.split('\n');
    // lines: header, entries..., '' (after the final newline)
    if (Number(trailer[1]) !== lines.length - 2) return false;
    for (let i = 1; i < lines.length - 1; i++) {
      const fields = lines[i]!.split(' ');
      if (fields.length < 5) return false;
      const [dev, ino, size, mtime] = fields;
      const sizeN = Number(size);
      const mtimeN = Number(mtime);
      if (
        !isId(dev!) ||
        !isId(ino!) ||
        !Number.isSafeInteger(sizeN) ||
        sizeN < 0 ||
        !Number.isFinite(mtimeN)
      ) {
        return false;
      }
      const entry: Entry = { size: sizeN, mtimeMs: mtimeN, kinds: [], digests: [] };
      for (let f = 4; f < fields.length; f++) {
        const field = fields[f]!;
        const eq = field.lastIndexOf('=');
        const hex = field.slice(eq + 1);
        if (eq <= 0 || !HEX.test(hex)) return false;
        entry.kinds.push(field.slice(0, eq));
        entry.digests.push(hex);
      }
      const inoN = Number(ino);
      if (inoN === 0) return false;
      this.#put(Number(dev), inoN, '', entry);
    }
    return true;
  }

  /**
   * Writes the cache atomically (a temporary file renamed over the old one); does nothing when nothing changed.
   * @throws DedupError with the errno code (`E_PERMISSION`, `E_NO_SPACE`...) when it cannot be written
   */
  async save(path: string): Promise<void> {
    if (!this.#dirty) return;
    const parts: string[] = [`${MAGIC}\n`];
    for (const [dev, inodes] of this.#byDev) {
      for (const [ino, entry] of inodes) {
        if (entry.kinds.length === 0) continue;
        let line = `${dev} ${ino} ${entry.size} ${entry.mtimeMs}`;
        for (let i = 0; i < entry.kinds.length; i++) line += ` ${entry.kinds[i]}=${entry.digests[i]}`;
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

const HEX = /^[0-9a-f]+$/;

function isId(text: string): boolean {
  return /^\d+$/.test(text);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
