import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '@fsw/tree';

/** After this many existence checks, one listing of the store is cheaper than a stat (or two) per object. */
const LIST_AFTER = 4096;
const HEX = /^[0-9a-f]+$/;

/**
 * Answers "which of these does the local store hold?" by `hasMany` for a small pull, and from one listing of the
 * store's fan-out directories once many objects have been asked about (a 200,000-file pull would otherwise stat
 * every object once or twice). Only for stores in fstree's layout (`objects/<hex[0:2]>/<hex[2:]>.file|.tree`);
 * any other `Store` is always asked through `hasMany`.
 */
export class Presence {
  private asked = 0;
  private listing: Promise<Set<string> | undefined> | undefined;

  constructor(private readonly store: Store) {}

  async hasMany(digests: readonly string[]): Promise<boolean[]> {
    this.asked += digests.length;
    if (this.listing === undefined && this.asked > LIST_AFTER && fstreeLayout(this.store)) {
      this.listing = listStore(this.store.dir).catch(() => undefined);
    }
    const set = this.listing === undefined ? undefined : await this.listing;
    if (set === undefined) return this.store.hasMany(digests);
    return digests.map((d) => set.has(d));
  }
}

function fstreeLayout(store: Store): boolean {
  const hex = '0123456789abcdef'.repeat(4);
  try {
    return store.path(`blake3:${hex}`, 'file') === join(store.dir, 'objects', '01', `${hex.slice(2)}.file`);
  } catch {
    return false;
  }
}

async function listStore(dir: string): Promise<Set<string>> {
  const objects = join(dir, 'objects');
  const present = new Set<string>();
  let fanout: string[];
  try {
    fanout = await readdir(objects);
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return present;
    throw error;
  }
  await Promise.all(
    fanout
      .filter((name) => name.length === 2 && HEX.test(name))
      .map(async (prefix) => {
        for (const name of await readdir(join(objects, prefix))) {
          // `<hex[2:]>.file|.tree`: 67 characters for BLAKE3, 43 for SHA-1 (temp files and strays are shorter or
          // named otherwise; a malformed name of the right length only adds a digest nobody asks about).
          if (!name.endsWith('.file') && !name.endsWith('.tree')) continue;
          if (name.length === 67) present.add(`blake3:${prefix}${name.slice(0, 62)}`);
          else if (name.length === 43) present.add(`sha1:${prefix}${name.slice(0, 38)}`);
        }
      }),
  );
  return present;
}
