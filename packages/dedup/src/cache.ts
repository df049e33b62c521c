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
  digests: Map<string, string>;
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
  readonly #entries = new Map<string, Entry>();
  #dirty = false;
  /** True when a cache file existed but was unreadable or corrupt, and was therefore ignored. */
  rebuilt = false;

  get size(): number {
    return this.#entries.size;
  }

  get(file: DedupFile, kind: string): string | undefined {
    const entry = this.#entries.get(keyOf(file));
    if (entry === undefined || entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) return undefined;
    return entry.digests.get(kind);
  }

  set(file: DedupFile, kind: string, digest: string): void {
    const key = keyOf(file);
    let entry = this.#entries.get(key);
    if (entry === undefined || entry.size !== file.size || entry.mtimeMs !== file.mtimeMs) {
      entry = { size: file.size, mtimeMs: file.mtimeMs, digests: new Map() };
      this.#entries.set(key, entry);
    }
    if (entry.digests.get(kind) !== digest) {
      entry.digests.set(kind, digest);
      this.#dirty = true;
    }
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
      cache.#entries.clear();
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
      const digests = new Map<string, string>();
      for (let f = 4; f < fields.length; f++) {
        const field = fields[f]!;
        const eq = field.lastIndexOf('=');
        const hex = field.slice(eq + 1);
        if (eq <= 0 || !/^[0-9a-f]+$/.test(hex)) return false;
        digests.set(field.slice(0, eq), hex);
      }
      this.#entries.set(`${dev}:${ino}`, { size: sizeN, mtimeMs: mtimeN, digests });
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
    for (const [key, entry] of this.#entries) {
      if (entry.digests.size === 0 || key.startsWith('path:')) continue;
      let line = `${key.replace(':', ' ')} ${entry.size} ${entry.mtimeMs}`;
      for (const [kind, hex] of entry.digests) line += ` ${kind}=${hex}`;
      parts.push(`${line}\n`);
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

function keyOf(file: DedupFile): string {
  // Without an inode number the path is the identity, for this run only (such entries are never saved).
  return file.ino === 0 ? `path:${file.path}` : `${file.dev}:${file.ino}`;
}

function isId(text: string): boolean {
  return /^\d+$/.test(text);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
