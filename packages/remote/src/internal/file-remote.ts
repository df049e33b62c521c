import { fileURLToPath } from 'node:url';
import { RemoteError, TreeError } from '@fsw/errors';
import { decodeTree, type ObjectKind, openStore } from '@fsw/tree';
import { normalizeDigest } from '../protocol.js';
import type { Remote, RemoteCallOptions, RemoteWriteOptions, WriteSource } from '../types.js';
import { missingByWalking } from './missing-walk.js';
import type { CallSettings } from './retry.js';
import { openSource } from './source.js';
import { streamIntoStore } from './spill.js';

function mapStoreError(error: unknown, url: string): unknown {
  if (!TreeError.is(error)) return error;
  const code: RemoteError['code'] =
    error.code === 'E_CORRUPT' ? 'E_DIGEST_MISMATCH' : error.code === 'E_NOT_EMPTY' ? 'E_IO' : error.code;
  return new RemoteError(code, `${error.message} (remote ${url})`, { path: error.path ?? url, cause: error });
}

/** Guesses an object's kind from its bytes: a tree is a valid tree object. */
function guessKind(bytes: Uint8Array): ObjectKind {
  // u16 magic 0x3eee, little-endian.
  if (bytes.length < 4 || bytes[0] !== 0xee || bytes[1] !== 0x3e) return 'file';
  try {
    decodeTree(bytes);
    return 'tree';
  } catch {
    return 'file';
  }
}

/** Opens a `file:///path` remote: a store directory (fstree's cache layout), e.g. on a mounted network filesystem. */
export function openFileRemote(url: URL, settings: CallSettings): Remote {
  const dir = fileURLToPath(url);
  const store = openStore(dir);
  const guard = async <T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> => {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (error) {
      throw mapStoreError(error, url.href);
    }
  };
  const remote: Remote = {
    url: url.href,
    protocol: 'file',
    hasObjects(digests, options: RemoteCallOptions = {}) {
      return guard(options.signal, () => store.hasMany(digests.map((d) => normalizeDigest(d))));
    },
    missing(treeDigests, options: RemoteCallOptions = {}) {
      return guard(options.signal, () =>
        missingByWalking(
          treeDigests,
          {
            hasObjects: (d) => store.hasMany(d),
            readTree: (d) => store.get(d),
            concurrency: settings.concurrency,
          },
          url.href,
        ),
      );
    },
    read(digest, options: RemoteCallOptions = {}) {
      return guard(options.signal, () => store.read(normalizeDigest(digest)));
    },
    write(digest, data: WriteSource, options: RemoteWriteOptions = {}) {
      return guard(options.signal, async () => {
        const d = normalizeDigest(digest);
        const source = await openSource(data, false, settings, d);
        if (source instanceof Uint8Array) {
          await store.putVerified(d, source, options.kind ?? guessKind(source));
          return;
        }
        // A stream may be a large file: it goes to disk as it comes, verified before it is renamed into place.
        if (await store.has(d)) return;
        await streamIntoStore(store, d, options.kind ?? 'file', source, 'the writer');
      });
    },
    async close() {},
    async [Symbol.asyncDispose]() {},
  };
  return remote;
}
