import { readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fromErrno, TreeError } from '@fsw/errors';
import { tryParseDigest } from '../digest.js';
import type { ObjectKind } from '../types.js';
import { objectFile } from './file-jobs.js';
import type { StoreStamps } from './index-file.js';

// Whether the objects named by an index are still in a local store, without one syscall per object.
//
// Removing a file from a folder always changes the folder's mtime. So when an index is saved, each store fan-out
// folder (`objects/<hex[0:2]>`) in which every digest of that index was seen present gets a stamp: its mtime and
// inode. On the next run, a folder whose mtime and inode still equal its stamp has lost nothing since, and the
// index's digests in it are present without looking (one stat per folder instead of a listing). A stamp is only
// taken of an mtime clearly older than the moment it was read (and not a whole second, as on filesystems with coarse
// timestamps): a change in the same clock tick could otherwise leave the mtime as it was.

/** How much older than "now" a folder's mtime must be for a stamp of it to be trusted later. */
const SETTLED_MS = 100;
/** Lookups in one fan-out folder after which the folder is listed once instead of stat-ed per object. */
const LIST_AFTER = 32;

interface FanStat {
  readonly mtimeMs: number;
  readonly ino: number;
  /** `Date.now()` just before the stat. */
  readonly at: number;
}

function settled(s: FanStat): boolean {
  return s.mtimeMs % 1000 !== 0 && s.mtimeMs <= s.at - SETTLED_MS;
}

function errnoOf(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

function statFan(path: string): FanStat | undefined {
  const at = Date.now();
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st?.isDirectory() ? { mtimeMs: st.mtimeMs, ino: st.ino, at } : undefined;
  } catch (error) {
    if (errnoOf(error) === 'ENOTDIR') return undefined;
    throw fromErrno(error, { path, family: TreeError, action: 'stat store directory' });
  }
}

/** Whether a store object file exists; any failure but its absence (a store path through a file: ENOTDIR) throws. */
function objectExists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (error) {
    throw fromErrno(error, { path, family: TreeError, action: 'stat store object' });
  }
}

/** The object names (hex without the fan and suffix) of a fan-out folder; empty when it does not exist. */
function listFan(path: string): Set<string> {
  const names = new Set<string>();
  try {
    // Keyed by the hex without the suffix: a lookup then needs no concatenated (flattened) string per file.
    for (const name of readdirSync(path)) {
      if (name.endsWith('.file') || name.endsWith('.tree')) names.add(name.slice(0, -5));
    }
  } catch (error) {
    const code = errnoOf(error);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      throw fromErrno(error, { path, family: TreeError, action: 'read store directory' });
    }
  }
  return names;
}

/** Our digests only: `blake3:<64 lowercase hex>` (anything else is not trusted, and re-read). */
function isOurs(digest: string): boolean {
  return digest.length === 71 && digest.startsWith('blake3:');
}

/**
 * Answers, for digests taken from an index, whether their objects are in a local store (`objects` folder), and
 * makes the stamps to save with the next index.
 */
export class ObjectPresence {
  private readonly first = new Map<
    string,
    { readonly stat: FanStat | undefined; readonly trusted: boolean }
  >();
  private readonly listings = new Map<string, Set<string>>();
  private readonly lookups = new Map<string, number>();
  /** Fan-out folders where objects were written or checked other than through {@link hasIndexed}. */
  private readonly touched = new Set<string>();
  private readonly stamps: StoreStamps['fans'] | undefined;
  /** The loaded stamps' {@link StoreStamps.usedAtMs} (0: none, or saved for another store). */
  readonly usedAtMs: number;

  constructor(
    private readonly objects: string,
    stamps: StoreStamps | undefined,
  ) {
    this.stamps = stamps?.objects === objects ? stamps.fans : undefined;
    this.usedAtMs = stamps?.objects === objects ? stamps.usedAtMs : 0;
  }

  /** Fan-out folders looked at whose stamp did not hold (changed since the index was saved, or no stamp). */
  untrustedFans(): Set<string> {
    const fans = new Set<string>();
    for (const [fan, first] of this.first) if (!first.trusted) fans.add(fan);
    return fans;
  }

  /**
   * Marks objects as used at `now` for eviction (mtime; the folder's own mtime, and so its stamp, stays): each one
   * with no `olderThan`, else only if its mtime is older (a `stat` first). Objects whose times this user may not set
   * (another user's, in a shared store) are passed over: no later run could do better. Returns false when one is
   * missing or could not be refreshed otherwise (a read-only store: it stops there), so that the caller vouches for
   * none of them.
   */
  refreshUse(
    items: Iterable<readonly [digest: string, kind: ObjectKind, olderThan: number | undefined]>,
    now: number,
  ): boolean {
    const seconds = now / 1000;
    let all = true;
    for (const [digest, kind, olderThan] of items) {
      if (!isOurs(digest)) continue;
      const path = objectFile(this.objects, digest.slice(7), kind);
      try {
        if (olderThan !== undefined) {
          const st = statSync(path, { throwIfNoEntry: false });
          if (st === undefined) return false;
          if (st.mtimeMs >= olderThan) continue;
        }
        utimesSync(path, seconds, seconds);
      } catch (error) {
        // LRU order is only a hint (as for the store's own touch); the others are still refreshed.
        const code = errnoOf(error);
        if (code === 'ENOENT' || code === 'EROFS') return false;
        if (code !== 'EPERM' && code !== 'EACCES') all = false;
      }
    }
    return all;
  }

  /** Whether the object of `digest`, read from the index the stamps were saved with, is in the store. */
  hasIndexed(digest: string): boolean {
    if (!isOurs(digest)) return false;
    const fan = digest.slice(7, 9);
    if (this.firstLook(fan).trusted) return true;
    let names = this.listings.get(fan);
    if (names === undefined) {
      const n = (this.lookups.get(fan) ?? 0) + 1;
      this.lookups.set(fan, n);
      if (n < LIST_AFTER) {
        const hex = tryParseDigest(digest)?.hex;
        return (
          hex !== undefined &&
          (objectExists(objectFile(this.objects, hex, 'file')) ||
            objectExists(objectFile(this.objects, hex, 'tree')))
        );
      }
      names = listFan(join(this.objects, fan));
      this.listings.set(fan, names);
    }
    // A name listed in the store is hex: a digest with anything else in it matches nothing.
    return names.has(digest.slice(9));
  }

  /** Whether the digests of the old index in fan-out folder `fan` are all there (its stamp still holds). */
  trusts(fan: string | undefined): boolean {
    return fan !== undefined && this.firstLook(fan).trusted;
  }

  /** Notes an object written to (or found in) the store by other means: its folder is looked at again on save. */
  noteStored(digest: string): void {
    if (isOurs(digest)) this.touched.add(digest.slice(7, 9));
  }

  /** Whether every stamp loaded was found unchanged and nothing else went to the store (the stamps still hold). */
  unchanged(): boolean {
    if (this.stamps === undefined || this.touched.size > 0) return false;
    for (const first of this.first.values()) if (!first.trusted) return false;
    return true;
  }

  /**
   * The stamps for an index holding `digests`: a folder gets one when every digest of it is there now. A folder
   * unchanged since it was first looked at this run keeps that stat (every check in it came later); any other is
   * listed again (after waiting, once, for folders changed a moment ago to settle).
   */
  async stampsFor(digests: Iterable<string>, usedAtMs: number): Promise<StoreStamps> {
    const byFan = new Map<string, string[]>();
    for (const digest of digests) {
      if (!isOurs(digest)) continue;
      const fan = digest.slice(7, 9);
      const list = byFan.get(fan);
      if (list === undefined) byFan.set(fan, [digest.slice(9)]);
      else list.push(digest.slice(9));
    }
    const fans = new Map<string, { mtimeMs: number; ino: number }>();
    let again: string[] = [];
    for (const fan of byFan.keys()) {
      const first = this.first.get(fan)?.stat;
      if (first !== undefined && !this.touched.has(fan) && settled(first)) {
        const now = statFan(join(this.objects, fan));
        if (now !== undefined && now.mtimeMs === first.mtimeMs && now.ino === first.ino) {
          fans.set(fan, { mtimeMs: first.mtimeMs, ino: first.ino });
          continue;
        }
      }
      again.push(fan);
    }
    for (let round = 0; round < 2 && again.length > 0; round++) {
      const racy: string[] = [];
      let wait = 0;
      for (const fan of again) {
        const path = join(this.objects, fan);
        const before = statFan(path);
        if (before === undefined) continue;
        const names = listFan(path);
        if (!byFan.get(fan)!.every((hex) => names.has(hex))) continue;
        if (settled(before)) fans.set(fan, { mtimeMs: before.mtimeMs, ino: before.ino });
        else if (before.mtimeMs % 1000 !== 0) {
          racy.push(fan);
          wait = Math.max(wait, before.mtimeMs + SETTLED_MS - before.at);
        }
      }
      again = racy;
      if (round === 0 && racy.length > 0 && wait > 0 && wait <= SETTLED_MS * 2) await sleep(wait + 5);
    }
    return { objects: this.objects, fans, usedAtMs };
  }

  private firstLook(fan: string) {
    let first = this.first.get(fan);
    if (first === undefined) {
      const stat = statFan(join(this.objects, fan));
      const stamp = this.stamps?.get(fan);
      first = {
        stat,
        trusted:
          stat !== undefined &&
          stamp !== undefined &&
          stamp.mtimeMs === stat.mtimeMs &&
          stamp.ino === stat.ino,
      };
      this.first.set(fan, first);
    }
    return first;
  }
}
