import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { RemoteError, type RemoteErrorCode } from '@fsw/errors';
import { cacheServiceDefinition } from '@fsw/remote';
import { DEFAULT_CACHE_BYTES, DEFAULT_RETENTION_MS, openStore } from '@fsw/tree';
import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { createAuthCheck } from './internal/auth.js';
import type { ServiceContext } from './internal/context.js';
import { createGrpcHandlers } from './internal/grpc.js';
import { createContinueHandler, createHttpHandler, figures } from './internal/http.js';
import { Metrics } from './internal/metrics.js';
import { ObjectSet } from './internal/objects.js';
import type { CacheServer, CreateServerOptions, ListenOptions, ServerAddress } from './types.js';

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_GRPC_PORT = 9090;
const DEFAULT_HTTP_PORT = 8080;
const DEFAULT_GRACE_MS = 5_000;
// Large HasObject/HasTree requests (hundreds of thousands of digests) must fit in one message.
const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/**
 * Starts the fstree-compatible cache server: the gRPC `fstree.CacheService` and the HTTP object API over one store.
 * Every upload is verified against its digest and written atomically; the store is kept under `maxBytes` by LRU
 * eviction.
 *
 * @example
 * ```ts
 * await using server = await createServer({ dir: '/var/cache/fsw', grpc: { port: 0 }, http: { port: 0 } });
 * console.log(server.addresses.grpc?.url, server.addresses.http?.url);
 * ```
 * @throws RemoteError E_INVALID_ARGUMENT for a bad option (a negative size, a port out of range, both protocols off)
 * @throws RemoteError E_ADDR_IN_USE when a port is already taken; E_UNAVAILABLE when it cannot be bound otherwise
 * (not permitted, an address of another machine, an unknown host). Nothing stays bound after either.
 */
export async function createServer(options: CreateServerOptions = {}): Promise<CacheServer> {
  const maxBytes = nonNegative(options.maxBytes ?? DEFAULT_CACHE_BYTES, 'maxBytes');
  const retentionMs = nonNegative(options.retentionMs ?? DEFAULT_RETENTION_MS, 'retentionMs');
  const maxObjectBytes = nonNegative(options.maxObjectBytes ?? maxBytes, 'maxObjectBytes');
  const announceTtlMs = nonNegative(options.announceTtlMs ?? DEFAULT_RETENTION_MS, 'announceTtlMs');
  const grpcListen =
    options.grpc === false ? undefined : listenOptions(options.grpc, DEFAULT_GRPC_PORT, 'grpc');
  const httpListen =
    options.http === false ? undefined : listenOptions(options.http, DEFAULT_HTTP_PORT, 'http');
  if (!grpcListen && !httpListen) {
    throw new RemoteError('E_INVALID_ARGUMENT', 'createServer: gRPC and HTTP are both turned off');
  }
  if (options.token !== undefined && !/^\S+$/.test(options.token)) {
    throw new RemoteError('E_INVALID_ARGUMENT', 'createServer: the token must be non-empty, without spaces');
  }
  options.signal?.throwIfAborted();

  const onError = options.onError ?? (() => undefined);
  const store = openStore(options.dir);
  const objects = new ObjectSet({ store, maxBytes, retentionMs, maxObjectBytes, announceTtlMs, onError });
  await objects.init();

  const running = new Set<Promise<unknown>>();
  const ctx: ServiceContext = {
    objects,
    metrics: new Metrics(),
    authorized: createAuthCheck(options.token),
    maxObjectBytes,
    maxBytes,
    onRequest: options.onRequest,
    onError,
    track: (work) => {
      running.add(work);
      const forget = () => running.delete(work);
      work.then(forget, forget);
      return work;
    },
  };

  let http: HttpServer | undefined;
  let grpc: GrpcServer | undefined;
  const addresses: { grpc?: ServerAddress; http?: ServerAddress } = {};
  try {
    if (httpListen) {
      const handler = createHttpHandler(ctx);
      // No overall request timeout: a multi-gigabyte upload over a slow link may take longer than Node's default
      // five minutes. Headers must still arrive promptly, and idle keep-alive connections are closed as usual.
      http = createHttpServer({ requestTimeout: 0, headersTimeout: 60_000 }, handler);
      http.on('checkContinue', createContinueHandler(ctx, handler));
      addresses.http = await listenHttp(http, httpListen);
    }
    if (grpcListen) {
      grpc = new GrpcServer({
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      });
      grpc.addService(cacheServiceDefinition, createGrpcHandlers(ctx));
      addresses.grpc = await listenGrpc(grpc, grpcListen);
      widenFlowControl(grpc);
    }
  } catch (error) {
    grpc?.forceShutdown();
    if (http) {
      // Wait for the listener to be gone, so that the port is free again when createServer rejects.
      const server = http;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await objects.close();
    throw error;
  }

  let closing: Promise<void> | undefined;
  const close = (closeOptions: { readonly graceMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      const graceMs = closeOptions.graceMs ?? DEFAULT_GRACE_MS;
      const stopped: Promise<void>[] = [];
      if (http) {
        const server = http;
        stopped.push(new Promise((resolve) => server.close(() => resolve())));
        server.closeIdleConnections();
      }
      if (grpc) {
        const server = grpc;
        stopped.push(new Promise((resolve) => server.tryShutdown(() => resolve())));
      }
      const all = Promise.all([...stopped, ...running]);
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      const outcome = await Promise.race([
        all.then(
          () => 'done' as const,
          () => 'done' as const,
        ),
        graceOver,
      ]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        grpc?.forceShutdown();
        http?.closeAllConnections();
      }
      await Promise.allSettled([...stopped, ...running]);
      await objects.close();
    })();
    return closing;
  };
  options.signal?.addEventListener('abort', () => void close(), { once: true });

  return {
    addresses,
    dir: store.dir,
    stats: () => ({
      objects: objects.count,
      bytes: objects.bytes,
      evictions: objects.evictions,
      evictedBytes: objects.evictedBytes,
    }),
    ready: () => objects.ready(),
    metrics: () => ctx.metrics.render(figures(ctx)),
    evict: () => objects.evict(),
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}

function nonNegative(value: number, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new RemoteError('E_INVALID_ARGUMENT', `createServer: ${name} must be a number >= 0, got ${value}`);
  }
  return value;
}

function listenOptions(
  given: ListenOptions | undefined,
  defaultPort: number,
  what: string,
): { host: string; port: number } {
  const host = given?.host ?? DEFAULT_HOST;
  const port = given?.port ?? defaultPort;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RemoteError('E_INVALID_ARGUMENT', `createServer: ${what}.port must be 0-65535, got ${port}`);
  }
  return { host, port };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const BIND_FAILURES: Readonly<Record<string, { readonly code: RemoteErrorCode; readonly reason: string }>> = {
  EADDRINUSE: { code: 'E_ADDR_IN_USE', reason: 'address already in use' },
  EACCES: { code: 'E_UNAVAILABLE', reason: 'permission denied' },
  EPERM: { code: 'E_UNAVAILABLE', reason: 'operation not permitted' },
  EADDRNOTAVAIL: { code: 'E_UNAVAILABLE', reason: 'address not available on this machine' },
  ENOTFOUND: { code: 'E_UNAVAILABLE', reason: 'unknown host' },
  EAI_AGAIN: { code: 'E_UNAVAILABLE', reason: 'host name lookup failed' },
};

/** The error for a listener that could not bind `at`: `cannot listen for gRPC on 127.0.0.1:9090: address already in use (EADDRINUSE)`. */
function bindError(protocol: string, at: { host: string; port: number }, error: unknown): RemoteError {
  const err = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
  };
  const message = typeof err.message === 'string' ? err.message : String(error);
  // grpc-js keeps only the messages of its listeners' errors ("... errors: [listen EADDRINUSE: ...]"), not the codes.
  const errno = typeof err.code === 'string' ? err.code : /\b(E[A-Z0-9_]{3,})\b/.exec(message)?.[1];
  const known = errno === undefined ? undefined : BIND_FAILURES[errno];
  const reason = known ? `${known.reason} (${errno})` : message;
  return new RemoteError(
    known?.code ?? 'E_UNAVAILABLE',
    `cannot listen for ${protocol} on ${hostPort(at.host, at.port)}: ${reason}`,
    { cause: error },
  );
}

/** Binds and closes a plain TCP listener on `at`, rejecting with the listener's errno error when that fails. */
function probeListen(at: { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(at.port, at.host, () => {
      probe.off('error', reject);
      probe.close(() => resolve());
    });
  });
}

function listenHttp(server: HttpServer, at: { host: string; port: number }): Promise<ServerAddress> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => reject(bindError('HTTP', at, error));
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      const port = (server.address() as AddressInfo).port;
      resolve({ host: at.host, port, url: `http://${hostPort(at.host, port)}` });
    });
  });
}

async function listenGrpc(server: GrpcServer, at: { host: string; port: number }): Promise<ServerAddress> {
  // A failed bindAsync says only "No address added out of total 1 resolved" (and grpc-js prints that line to
  // stderr itself), without the errno. Trying the address with a plain listener first turns the usual failures (a
  // taken port, an unknown host) into a real errno error; the port is free again before grpc-js binds it, and the
  // message is still parsed should the port be taken in between.
  try {
    await probeListen(at);
  } catch (error) {
    throw bindError('gRPC', at, error);
  }
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort(at.host, at.port), ServerCredentials.createInsecure(), (error, port) => {
      if (error) {
        reject(bindError('gRPC', at, error));
        return;
      }
      resolve({ host: at.host, port, url: `jolt://${hostPort(at.host, port)}` });
    });
  });
}

/** HTTP/2 flow-control windows of a gRPC connection: per stream, and for the whole connection. */
const STREAM_WINDOW = 4 * 1024 * 1024;
const CONNECTION_WINDOW = 32 * 1024 * 1024;

/**
 * grpc-js leaves the receiving side of a server connection at HTTP/2's default 64 KiB window: an upload then stalls
 * every 64 KiB until a WINDOW_UPDATE makes the round trip through both event loops, which on loopback costs more
 * time than moving the bytes. Widen the windows of every connection (grpc-js has no option for its server, so this
 * reaches its HTTP/2 servers; should a future grpc-js keep them elsewhere, nothing changes but the speed).
 */
function widenFlowControl(server: GrpcServer): void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return;
  for (const http2Server of servers.keys() as Iterable<Http2Server>) {
    if (typeof http2Server?.on !== 'function') continue;
    http2Server.on('session', (session: ServerHttp2Session) => {
      try {
        session.settings({ initialWindowSize: STREAM_WINDOW });
        session.setLocalWindowSize(CONNECTION_WINDOW);
      } catch {
        // A session closing already: nothing to widen.
      }
    });
  }
}
