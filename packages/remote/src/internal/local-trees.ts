import { readFileSync } from 'node:fs';
import type { Store } from '@fsw/tree';

/** How long one stretch of blocking reads may hold the event loop. */
const SLICE_MS = 8;

/** The synchronous extras of the tree package's `LocalStore` (other stores lack them). */
interface SyncStore extends Store {
  readonly verify?: boolean;
  locateSync?(digest: string): { readonly path: string } | undefined;
}

/**
 * The bytes of stored objects (trees of a pull): for a local store that does not re-hash on read, with blocking
 * calls (`locateSync`, which also marks the object used, and one read) in slices of a few milliseconds — a pull of
 * a present 200,000-file tree reads thousands of them, and an asynchronous `get` costs a thread-pool round trip per
 * call. Anything else, and any object not found that way, goes through `store.get`.
 * @throws TreeError E_MISSING_OBJECT (from `get`)
 */
export async function getAll(store: Store, digests: readonly string[]): Promise<Uint8Array[]> {
  const sync = store as SyncStore;
  const out: Uint8Array[] = new Array(digests.length);
  const slow: number[] = [];
  if (sync.locateSync === undefined || sync.verify !== false) {
    slow.push(...digests.keys());
  } else {
    let start = performance.now();
    for (let i = 0; i < digests.length; i++) {
      if (performance.now() - start >= SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        start = performance.now();
      }
      try {
        const found = sync.locateSync(digests[i]!);
        if (found !== undefined) out[i] = readFileSync(found.path);
        else slow.push(i);
      } catch {
        slow.push(i);
      }
    }
  }
  for (const i of slow) out[i] = await store.get(digests[i]!);
  return out;
}
