import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fromErrno, TreeError } from '@fsw/errors';
import { INDEX_DIR } from './ignore-rules.js';

/** What the index remembers of one path after a write-tree or checkout. */
export interface IndexRecord {
  readonly type: 'file' | 'dir' | 'symlink';
  /** `blake3:<hex>` for a file, `''` otherwise. */
  readonly digest: string;
  /** Full `st_mode`. */
  readonly mode: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  /**
   * Never trust this record: the file changed while it was read, or (set on load) its mtime is not older than the
   * index file's own mtime, so a later change within the same timestamp tick could go unseen (git's "racy clean").
   */
  readonly racy: boolean;
}

const MAGIC = 'fsw-tree-index 1';
const FIELDS = 8;
const TYPE_CODE = { file: 'f', dir: 'd', symlink: 'l' } as const;
const CODE_TYPE: Readonly<Record<string, IndexRecord['type']>> = { f: 'file', d: 'dir', l: 'symlink' };

/** The index path of a directory: `<dir>/.fstree/index`. */
export function indexPath(dir: string): string {
  return join(dir, INDEX_DIR, 'index');
}

/**
 * Loads `<dir>/.fstree/index`. A missing, unreadable or malformed index is an empty one: the index is a cache,
 * and losing it only costs re-hashing.
 */
export async function loadIndex(dir: string): Promise<Map<string, IndexRecord>> {
  const records = new Map<string, IndexRecord>();
  let text: string;
  let indexMtimeMs: number;
  try {
    const handle = await open(indexPath(dir), 'r');
    try {
      // Both times come from the same filesystem clock, whatever its granularity.
      indexMtimeMs = (await handle.stat()).mtimeMs;
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return records;
  }
  // Records are NUL-separated fields: names may hold any character but NUL.
  const parts = text.split('\u0000');
  if (parts[0] !== MAGIC) return records;
  for (let i = 1; i + FIELDS <= parts.length; i += FIELDS) {
    const type = CODE_TYPE[parts[i + 1]!];
    if (type === undefined) return new Map();
    const mtimeMs = Number(parts[i + 5]);
    records.set(parts[i]!, {
      type,
      digest: parts[i + 2]!,
      mode: Number(parts[i + 3]),
      size: Number(parts[i + 4]),
      mtimeMs,
      ino: Number(parts[i + 6]),
      racy: parts[i + 7] === '1' || mtimeMs >= indexMtimeMs,
    });
  }
  return records;
}

/** Writes the index atomically (temp + rename). Returns false when `.fstree` cannot be created (read-only dir). */
export async function saveIndex(dir: string, records: ReadonlyMap<string, IndexRecord>): Promise<boolean> {
  const folder = join(dir, INDEX_DIR);
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return false;
    throw fromErrno(error, { path: folder, family: TreeError, action: 'create index folder' });
  }
  const chunks: string[] = [MAGIC];
  let newest = 0;
  for (const [path, r] of records) {
    if (r.type === 'file' && !r.racy && r.mtimeMs > newest) newest = r.mtimeMs;
    chunks.push(
      path,
      TYPE_CODE[r.type],
      r.digest,
      String(r.mode),
      String(r.size),
      String(r.mtimeMs),
      String(r.ino),
      r.racy ? '1' : '0',
    );
  }
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
      await handle.writeFile(`${chunks.join('\u0000')}\u0000`);
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
