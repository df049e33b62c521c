import type { Readable } from 'node:stream';
import type { ObjectKind } from '@fsw/tree';

/** Which transport a {@link Remote} speaks. */
export type RemoteProtocol = 'grpc' | 'http' | 'file';

/** What a remote lacks below some trees: the answer of `HasTree`. Digests are always in full form (`blake3:<hex>`). */
export interface MissingResult {
  /** Trees the remote lacks (what is below them could not be inspected). */
  readonly trees: readonly string[];
  /** File objects the remote lacks below the trees it has. */
  readonly objects: readonly string[];
}

/**
 * Bytes to write: in memory, a stream, or a function opening a fresh stream, which is called again on every retry
 * (a plain stream cannot be replayed, so a write from one is attempted once).
 */
export type WriteSource =
  | Uint8Array
  | AsyncIterable<Uint8Array>
  | (() => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>);

/** Per-call options of the {@link Remote} methods. */
export interface RemoteCallOptions {
  /** Cancels the call; it then rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** One object of {@link Remote.writeMany}: its digest and bytes (and kind, when known). */
export interface BatchObject {
  readonly digest: string;
  readonly bytes: Uint8Array;
  readonly kind?: ObjectKind;
}

/** Options of {@link Remote.write}. */
export interface RemoteWriteOptions extends RemoteCallOptions {
  /**
   * Whether the object is a file or a tree. Only a `file://` remote needs it (its store keeps `.file`/`.tree`
   * apart); when absent it is guessed from the bytes (a valid tree object is a tree).
   */
  readonly kind?: ObjectKind;
  /** The object's size in bytes, when known (lets HTTP send a `Content-Length`). */
  readonly size?: number;
}

/**
 * One connection to a remote object cache (gRPC, HTTP or a store directory), opened by `openRemote`. Every method
 * accepts digests as `blake3:<hex>` or bare hex, retries transient failures, and throws `RemoteError`.
 */
export interface Remote extends AsyncDisposable {
  /** The URL it was opened with. */
  readonly url: string;
  readonly protocol: RemoteProtocol;
  /**
   * Which of `digests` the remote holds, one flag per digest in the same order.
   * @throws RemoteError E_UNAVAILABLE, E_UNAUTHENTICATED, E_TIMEOUT, E_PROTOCOL
   */
  hasObjects(digests: readonly string[], options?: RemoteCallOptions): Promise<boolean[]>;
  /**
   * What the remote lacks below the trees `treeDigests`, inspected recursively on the remote (`HasTree` on gRPC).
   * A tree it lacks is listed in `trees`; files it lacks, below trees it has, in `objects`.
   * @throws RemoteError E_UNAVAILABLE, E_UNAUTHENTICATED, E_TIMEOUT, E_PROTOCOL
   */
  missing(treeDigests: readonly string[], options?: RemoteCallOptions): Promise<MissingResult>;
  /**
   * A stream of the object's bytes, as the remote sends them (not verified: `pull` verifies).
   * @throws RemoteError E_MISSING_OBJECT when the remote lacks it, E_UNAVAILABLE, E_UNAUTHENTICATED, E_TIMEOUT
   */
  read(digest: string, options?: RemoteCallOptions): Promise<Readable>;
  /**
   * Uploads one object. An object the remote already holds is a success.
   * @throws RemoteError E_DIGEST_MISMATCH when the remote refuses the bytes, E_TOO_LARGE, E_UNAVAILABLE,
   *   E_UNAUTHENTICATED, E_TIMEOUT
   */
  write(digest: string, data: WriteSource, options?: RemoteWriteOptions): Promise<void>;
  /**
   * Uploads several small objects in as few round trips as the remote allows: on gRPC, one `WriteObject` stream
   * carrying them all when the server announced that extension (`fsw serve` does); on HTTP, one
   * `POST /objects?write` when the server announced it in its batch-query answers (`fsw serve` does); else one call
   * per object. Every
   * object is still verified by the remote, and objects it already holds are a success. `push` uses it when present.
   * @throws RemoteError as {@link Remote.write}
   */
  writeMany?(objects: readonly BatchObject[], options?: RemoteCallOptions): Promise<void>;
  /**
   * True once the remote has said that {@link Remote.writeMany} sends several objects per call (a gRPC server
   * announcing the extension in its first answer, an HTTP server in its answer to the batch query); `push` then
   * batches small objects, else it uploads them one by one.
   */
  readonly batchWrites?: boolean;
  /**
   * Reads several small objects in one round trip where the remote offers it (a gRPC server announcing the
   * extension: see {@link Remote.batchReads}), calling `onObject` once per digest, in order and one at a time (the
   * next object is read once the promise it returns settles): with the object's bytes (not verified), or with
   * undefined for an object the remote did not send that way (missing, or large), which the caller then reads
   * with {@link Remote.read}.
   * @throws RemoteError E_UNAVAILABLE, E_UNAUTHENTICATED, E_TIMEOUT, E_PROTOCOL; whatever `onObject` throws
   */
  readMany?(
    digests: readonly string[],
    onObject: (digest: string, bytes: Uint8Array | undefined) => Promise<void> | void,
    options?: RemoteCallOptions,
  ): Promise<void>;
  /** True once the remote has said that {@link Remote.readMany} reads several objects per call. */
  readonly batchReads?: boolean;
  /** Closes connections; further calls fail. */
  close(): Promise<void>;
}

/** Options of `openRemote`. */
export interface OpenRemoteOptions {
  /** Sent as `authorization: Bearer <token>` (gRPC metadata, HTTP header). @default undefined (no header) */
  readonly token?: string;
  /** How many requests may be in flight at once (HTTP sockets, parallel HEADs). @default 16 */
  readonly concurrency?: number;
  /**
   * How long to wait for a connection, for a unary answer, or between two chunks of a stream, in milliseconds.
   * A server that does not answer within it fails with `E_UNAVAILABLE` (no connection) or `E_TIMEOUT`.
   * @default 30_000
   */
  readonly timeoutMs?: number;
  /** How many times a transient failure (UNAVAILABLE, connection reset, HTTP 5xx/429) is retried. @default 4 */
  readonly retries?: number;
  /** First retry delay; it doubles on each retry, with full jitter, up to 5 s. @default 100 */
  readonly retryDelayMs?: number;
  /**
   * Path layout of an HTTP remote: `'jolt'` (`/objects/<digest>` and the batch POST, as jolt-cache and `fsw serve`
   * answer) or `'fstree'` (`<base>/bl/ake3:X/<rest>`, as the fstree C++ client uses, e.g. on a plain WebDAV server).
   * @default 'jolt'
   */
  readonly httpLayout?: 'jolt' | 'fstree';
  /** PEM root certificates for `grpcs://` (else the system's). @default undefined */
  readonly rootCerts?: Uint8Array;
}

/** Progress of a push or pull, reported (throttled) through `onProgress`. */
export interface TransferProgress {
  readonly phase: 'scan' | 'transfer' | 'done';
  /** Objects found missing so far (to upload or download). */
  readonly objectsTotal: number;
  readonly objectsDone: number;
  /** Bytes of the missing objects, when known (a pull learns sizes as it downloads). */
  readonly bytesTotal: number;
  readonly bytesDone: number;
}

/** Options of `push`. */
export interface PushOptions {
  /** Parallel uploads. @default the remote's concurrency (16) */
  readonly concurrency?: number;
  /** Called (throttled, synchronously) as the push progresses. */
  readonly onProgress?: (progress: TransferProgress) => void;
  /** Cancels the push; it rejects with `signal.reason`. What was uploaded stays uploaded. */
  readonly signal?: AbortSignal;
}

/** What `push` did. */
export interface PushResult {
  /** The root tree pushed, `blake3:<hex>`. */
  readonly digest: string;
  /** Objects uploaded (trees and files). */
  readonly objectsUploaded: number;
  readonly bytesUploaded: number;
  /** Round trips spent finding what the remote lacked. */
  readonly queries: number;
}

/** Options of `pull`. */
export interface PullOptions {
  /** Parallel downloads. @default the remote's concurrency (16) */
  readonly concurrency?: number;
  /** Called (throttled, synchronously) as the pull progresses. */
  readonly onProgress?: (progress: TransferProgress) => void;
  /** Cancels the pull; it rejects with `signal.reason`. What was verified and stored stays stored. */
  readonly signal?: AbortSignal;
}

/** What `pull` did. */
export interface PullResult {
  /** The root tree pulled, `blake3:<hex>`. */
  readonly digest: string;
  /** Objects downloaded, verified and stored (trees and files). */
  readonly objectsDownloaded: number;
  readonly bytesDownloaded: number;
  /** Objects found already in the local store. */
  readonly objectsPresent: number;
}
