/** Where one protocol listens. */
export interface ListenOptions {
  /** The interface to bind. @default '127.0.0.1' */
  readonly host?: string;
  /** The TCP port; `0` lets the OS pick one (see {@link CacheServer.addresses}). @default 9090 for gRPC, 8080 for HTTP */
  readonly port?: number;
}

/** One request the server answered, as passed to {@link CreateServerOptions.onRequest}. */
export interface RequestEvent {
  readonly protocol: 'grpc' | 'http';
  /** The gRPC method (`HasTree`...) or the HTTP method (`PUT`...). */
  readonly method: string;
  /** The digest (or the first of several) or the HTTP path. */
  readonly target: string;
  /** The HTTP status code, or the gRPC status name (`OK`, `NOT_FOUND`...). */
  readonly status: number | string;
  readonly durationMs: number;
  /** Object bytes received (uploads). */
  readonly bytesReceived: number;
  /** Object bytes sent (downloads). */
  readonly bytesSent: number;
}

/** Options of `createServer`. Every field is optional. */
export interface CreateServerOptions {
  /**
   * The store directory (fstree's cache layout: `objects/<hex[0:2]>/<hex[2:]>.file|.tree`).
   * @default `FSTREE_CACHE`, else `~/.cache/fstree` (the `@fsw/tree` default)
   */
  readonly dir?: string;
  /** Where the gRPC `fstree.CacheService` listens; `false` turns gRPC off. @default { host: '127.0.0.1', port: 9090 } */
  readonly grpc?: ListenOptions | false;
  /** Where the HTTP object API listens; `false` turns HTTP off. @default { host: '127.0.0.1', port: 8080 } */
  readonly http?: ListenOptions | false;
  /**
   * The store's size limit: past it, least-recently-used objects are evicted down to 90% of it (objects used within
   * `retentionMs`, and those a running push announced, are kept even if the store stays larger).
   * @default 10 GiB
   */
  readonly maxBytes?: number;
  /** Objects written, read or asked about more recently than this are never evicted. @default 3_600_000 (1 hour) */
  readonly retentionMs?: number;
  /**
   * When set, every request must carry `authorization: Bearer <token>` (gRPC metadata or HTTP header); others get
   * UNAUTHENTICATED / 401 and learn nothing about the store. `GET /healthz` stays open.
   * @default undefined (no authentication)
   */
  readonly token?: string;
  /** The largest object accepted; larger uploads get RESOURCE_EXHAUSTED / 413. @default maxBytes */
  readonly maxObjectBytes?: number;
  /**
   * How long objects announced by a push (the trees and objects a `HasTree` walk visited or reported missing, the
   * digests of an HTTP batch query) stay protected from eviction when the push goes quiet without completing.
   * @default 3_600_000 (1 hour)
   */
  readonly announceTtlMs?: number;
  /** Called once per answered request (e.g. to log it). Must not throw. */
  readonly onRequest?: (event: RequestEvent) => void;
  /** Called with failures no client caused: a failed background eviction, an internal error in a request. */
  readonly onError?: (error: unknown) => void;
  /** Aborting it closes the server. */
  readonly signal?: AbortSignal;
}

/** Where a protocol ended up listening. */
export interface ServerAddress {
  readonly host: string;
  /** The real port (also when 0 was asked for). */
  readonly port: number;
  /** A URL clients can use: `jolt://host:port` for gRPC, `http://host:port` for HTTP. */
  readonly url: string;
}

/** What one eviction pass removed. */
export interface ServerEvictResult {
  readonly removed: number;
  readonly bytesFreed: number;
}

/** Figures about the store the server holds. */
export interface ServerStats {
  readonly objects: number;
  readonly bytes: number;
  readonly evictions: number;
  readonly evictedBytes: number;
}

/** A running cache server. Close it with `close()` or `await using`. */
export interface CacheServer {
  /** Where each enabled protocol listens. */
  readonly addresses: { readonly grpc?: ServerAddress; readonly http?: ServerAddress };
  /** The store directory. */
  readonly dir: string;
  /** Objects and bytes in the store (counted once the startup scan is done; see `ready`). */
  stats(): ServerStats;
  /** Resolves once the startup scan of an existing store has finished. */
  ready(): Promise<void>;
  /** The `/metrics` page: Prometheus text format. */
  metrics(): string;
  /** Runs an eviction pass now (one also runs by itself whenever a write takes the store past `maxBytes`). */
  evict(): Promise<ServerEvictResult>;
  /**
   * Stops listening, lets running requests finish for up to `graceMs` and then cuts them (uploads cut short leave
   * nothing behind), and removes the server's temp files.
   */
  close(options?: { readonly graceMs?: number }): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
