import { RemoteError } from '@fsw/errors';
import { openFileRemote } from './internal/file-remote.js';
import { openHttpRemote } from './internal/http-remote.js';
import type { CallSettings } from './internal/retry.js';
import type { OpenRemoteOptions, Remote } from './types.js';

/** The remote used when none is given, as fstree: `jolt://localhost:9090`. */
export const DEFAULT_REMOTE = 'jolt://localhost:9090';
/** Default of `OpenRemoteOptions.concurrency`. */
export const DEFAULT_CONCURRENCY = 16;
/** Default of `OpenRemoteOptions.timeoutMs`. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Default of `OpenRemoteOptions.retries`. */
export const DEFAULT_RETRIES = 4;

/**
 * A Remote whose implementation is loaded on first use: `@grpc/grpc-js` costs start-up time that HTTP and file://
 * users (and `fsw --help`) should not pay.
 */
function lazyRemote(url: string, protocol: Remote['protocol'], load: () => Promise<Remote>): Remote {
  let loaded: Promise<Remote> | undefined;
  let inner: Remote | undefined;
  let closed = false;
  const get = () => {
    loaded ??= load().then((r) => {
      inner = r;
      return r;
    });
    return loaded;
  };
  const remote: Remote = {
    url,
    protocol,
    get batchWrites() {
      return inner?.batchWrites;
    },
    get batchReads() {
      return inner?.batchReads;
    },
    readMany: async (digests, onObject, options) => (await get()).readMany!(digests, onObject, options),
    hasObjects: async (digests, options) => (await get()).hasObjects(digests, options),
    missing: async (digests, options) => (await get()).missing(digests, options),
    read: async (digest, options) => (await get()).read(digest, options),
    write: async (digest, data, options) => (await get()).write(digest, data, options),
    // The gRPC remote always has it (one call per object when the server does not take batches).
    writeMany: async (objects, options) => (await get()).writeMany!(objects, options),
    async close() {
      if (closed) return;
      closed = true;
      const current = loaded;
      loaded = Promise.reject(
        new RemoteError('E_UNAVAILABLE', `the remote ${url} was closed`, { path: url }),
      );
      loaded.catch(() => {});
      // A load that failed has nothing to close.
      const inner = await current?.catch(() => undefined);
      await inner?.close();
    },
    async [Symbol.asyncDispose]() {
      await remote.close();
    },
  };
  return remote;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new RemoteError(
      'E_INVALID_ARGUMENT',
      `openRemote: ${name} must be an integer >= ${min}, got ${value}`,
    );
  }
  return value;
}

/**
 * Opens a remote object cache. Nothing is sent until the first call (a dead server is reported by that call).
 *
 * - `jolt://host:port`, `tcp://host:port` — gRPC `fstree.CacheService`, plaintext (default port 9090);
 *   `grpcs://host:port` — the same over TLS.
 * - `http://host:port/base`, `https://…` — the HTTP object API (`/objects/<digest>` and the batch query, or the
 *   fstree client's layout with `httpLayout: 'fstree'`).
 * - `file:///path` — a store directory in fstree's cache layout.
 *
 * @example
 * ```ts
 * await using remote = openRemote('jolt://localhost:9090', { token: process.env.FSW_TOKEN });
 * const [present] = await remote.hasObjects(['blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262']);
 * ```
 * @throws RemoteError E_INVALID_ARGUMENT for a URL that does not parse, an unknown scheme, or a bad option
 */
export function openRemote(url: string | URL, options: OpenRemoteOptions = {}): Remote {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch (cause) {
    throw new RemoteError(
      'E_INVALID_ARGUMENT',
      `not a remote URL: '${String(url)}' (e.g. jolt://host:9090, http://host:8080, file:///dir)`,
      { cause },
    );
  }
  const settings: CallSettings = {
    url: parsed.href,
    token: options.token === '' ? undefined : options.token,
    concurrency: positiveInt('concurrency', options.concurrency, DEFAULT_CONCURRENCY, 1),
    timeoutMs: positiveInt('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS, 1),
    retries: positiveInt('retries', options.retries, DEFAULT_RETRIES, 0),
    retryDelayMs: positiveInt('retryDelayMs', options.retryDelayMs, 100, 0),
  };
  switch (parsed.protocol) {
    case 'jolt:':
    case 'tcp:':
    case 'grpc:':
    case 'grpcs:':
      if (parsed.hostname === '')
        throw new RemoteError('E_INVALID_ARGUMENT', `remote URL has no host: '${parsed.href}'`);
      return lazyRemote(parsed.href, 'grpc', async () =>
        (await import('./internal/grpc-remote.js')).openGrpcRemote(parsed, settings, options.rootCerts),
      );
    case 'http:':
    case 'https:':
      return openHttpRemote(parsed, settings, options.httpLayout ?? 'jolt');
    case 'file:':
      return openFileRemote(parsed, settings);
    default:
      throw new RemoteError(
        'E_INVALID_ARGUMENT',
        `unsupported remote scheme '${parsed.protocol}' in '${parsed.href}' (use jolt://, tcp://, grpcs://, http://, https:// or file://)`,
      );
  }
}
