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

// Binary: the magic line, then per record a fixed 36-byte head (type u8, racy u8, digest length u8, 0 u8, mode u32,
// path length u32, size f64, mtimeMs f64, ino f64; little-endian) followed by the path (UTF-8) and the digest
// (ASCII). Parsed with offsets and no per-field strings: loading is a measurable part of an unchanged write-tree.
const MAGIC = Buffer.from('fsw-tree-index 2\n', 'latin1');
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
 * Loads `<dir>/.fstree/index`. A missing, unreadable or malformed index is an empty one: the index is a cache,
 * and losing it only costs re-hashing.
 */
export async function loadIndex(dir: string): Promise<Map<string, IndexRecord>> {
  const records = new Map<string, IndexRecord>();
  let bytes: Buffer;
  let indexMtimeMs: number;
  try {
    const handle = await open(indexPath(dir), 'r');
    try {
      // Both times come from the same filesystem clock, whatever its granularity.
      indexMtimeMs = (await handle.stat()).mtimeMs;
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch {
    return records;
  }
  if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return records;
  let at = MAGIC.length;
  while (at < bytes.length) {
    if (at + HEAD > bytes.length) return new Map();
    const type = CODE_TYPE[bytes[at]!];
    const digestLength = bytes[at + 2]!;
    const pathLength = bytes.readUInt32LE(at + 8);
    const end = at + HEAD + pathLength + digestLength;
    if (type === undefined || end > bytes.length) return new Map();
    const mtimeMs = bytes.readDoubleLE(at + 20);
    records.set(bytes.toString('utf8', at + HEAD, at + HEAD + pathLength), {
      type,
      digest: digestLength === 0 ? '' : bytes.toString('latin1', at + HEAD + pathLength, end),
      mode: bytes.readUInt32LE(at + 4),
      size: bytes.readDoubleLE(at + 12),
      mtimeMs,
      ino: bytes.readDoubleLE(at + 28),
      racy: bytes[at + 1] === 1 || mtimeMs >= indexMtimeMs,
    });
    at = end;
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
  let size = MAGIC.length;
  let newest = 0;
  for (const [path, r] of records) {
    if (r.type === 'file' && !r.racy && r.mtimeMs > newest) newest = r.mtimeMs;
    size += HEAD + Buffer.byteLength(path, 'utf8') + digestOf(r).length;
  }
  const bytes = Buffer.allocUnsafe(size);
  MAGIC.copy(bytes, 0);
  let at = MAGIC.length;
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
