import { once } from 'node:events';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pLimit from 'p-limit';
import {
  CHUNK_BYTES,
  cacheServiceDefinition,
  type HasObjectRequest,
  type HasObjectResponse,
  type HasTreeRequest,
  type HasTreeResponse,
  normalizeDigest,
  READ_BATCH_HEADER,
  type ReadObjectRequest,
  type ReadObjectResponse,
  WRITE_BATCH_HEADER,
  type WriteObjectRequest,
} from '../protocol.js';
import type {
  BatchObject,
  MissingResult,
  Remote,
  RemoteCallOptions,
  RemoteWriteOptions,
  WriteSource,
} from '../types.js';
import { type CallSettings, remoteError, TransientError, withRetry } from './retry.js';
import { chunksOf, openSource } from './source.js';

const Client = grpc.makeGenericClientConstructor(cacheServiceDefinition, 'CacheService');

interface CacheClient extends grpc.Client {
  HasObject(
    req: HasObjectRequest,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res?: HasObjectResponse) => void,
  ): grpc.ClientUnaryCall;
  HasTree(req: HasTreeRequest, md: grpc.Metadata): grpc.ClientReadableStream<HasTreeResponse>;
  ReadObject(req: ReadObjectRequest, md: grpc.Metadata): grpc.ClientReadableStream<ReadObjectResponse>;
  WriteObject(
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null) => void,
  ): grpc.ClientWritableStream<WriteObjectRequest>;
}

/** Digests per HasObject/HasTree request: ~300 KB of digests, well under the 4 MiB default message limit. */
const BATCH = 4096;

/** Largest message of a batched `WriteObject` stream (only sent to a server that announced the extension). */
const BATCH_CHUNK_BYTES = 1024 * 1024;

/** Default port of a jolt:// remote. */
export const DEFAULT_GRPC_PORT = 9090;

/** Cancels a call when nothing arrives for `timeoutMs`; `fired` tells a timeout from other cancellations. */
class Watchdog {
  fired = false;
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly timeoutMs: number,
    private readonly onFire: () => void,
  ) {
    this.kick();
  }
  kick(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = true;
      this.onFire();
    }, this.timeoutMs);
    this.timer.unref();
  }
  stop(): void {
    clearTimeout(this.timer);
  }
}

/** Opens a gRPC remote (`jolt://`, `tcp://`, `grpcs://`). */
export function openGrpcRemote(url: URL, settings: CallSettings, rootCerts: Uint8Array | undefined): Remote {
  const tls = url.protocol === 'grpcs:';
  const port = url.port === '' ? DEFAULT_GRPC_PORT : Number(url.port);
  const target = `${url.hostname}:${port}`;
  const credentials = tls
    ? grpc.credentials.createSsl(rootCerts === undefined ? null : Buffer.from(rootCerts))
    : grpc.credentials.createInsecure();
  const client = new Client(target, credentials, {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    // We retry ourselves, with our own backoff and error mapping.
    'grpc.enable_retries': 0,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2_000,
    // HTTP/2's default 64 KiB receive window makes a download wait for a WINDOW_UPDATE round trip every 64 KiB. Not
    // much more than this, though: it bounds what a server may send ahead on each of the pull's parallel streams (32
    // MiB held ~550 MB in memory during a 960 MB pull, 4-8 MiB ~330 MB, at the same speed over loopback).
    'grpc-node.flow_control_window': 8 * 1024 * 1024,
  }) as unknown as CacheClient;
  let closed = false;
  /** The server announced {@link WRITE_BATCH_HEADER}: several objects may share one `WriteObject` stream. */
  let batchWrites = false;
  /** The server announced {@link READ_BATCH_HEADER}: one `ReadObject` call may fetch several objects. */
  let batchReads = false;
  const noteFeatures = (md: grpc.Metadata) => {
    if (md.get(WRITE_BATCH_HEADER)[0] === '1') batchWrites = true;
    if (md.get(READ_BATCH_HEADER)[0] === '1') batchReads = true;
  };

  const metadata = (): grpc.Metadata => {
    const md = new grpc.Metadata();
    if (settings.token !== undefined) md.set('authorization', `Bearer ${settings.token}`);
    return md;
  };

  /** Turns a gRPC failure into a RemoteError, or a TransientError worth retrying. */
  const mapError = (
    error: unknown,
    what: string,
    watchdog: Watchdog | undefined,
    signal?: AbortSignal,
  ): Error => {
    if (signal?.aborted) return signal.reason as Error;
    if (closed) return remoteError('E_UNAVAILABLE', settings, `${what}: the remote was closed`, error);
    const e = error as Partial<grpc.ServiceError>;
    // Not a gRPC status: a failure of our own side (e.g. reading the local object being uploaded).
    if (typeof e.code !== 'number' && !watchdog?.fired) {
      return error instanceof Error
        ? error
        : remoteError('E_IO', settings, `${what}: ${String(error)}`, error);
    }
    const details = tidyDetails(e.details ?? (error instanceof Error ? error.message : String(error)));
    const connected = client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
    if (watchdog?.fired) {
      const code = connected ? 'E_TIMEOUT' : 'E_UNAVAILABLE';
      const why = connected
        ? `no answer within ${settings.timeoutMs} ms`
        : `could not connect to ${target} within ${settings.timeoutMs} ms`;
      return remoteError(code, settings, `${what}: ${why}`, error);
    }
    switch (e.code) {
      case grpc.status.UNAVAILABLE:
        return new TransientError(
          remoteError('E_UNAVAILABLE', settings, `${what}: unavailable (${details})`, error),
        );
      case grpc.status.UNAUTHENTICATED:
      case grpc.status.PERMISSION_DENIED:
        return remoteError('E_UNAUTHENTICATED', settings, `${what}: refused (${details})`, error);
      case grpc.status.NOT_FOUND:
        return remoteError('E_MISSING_OBJECT', settings, `${what}: not found`, error);
      case grpc.status.DEADLINE_EXCEEDED:
        return remoteError('E_TIMEOUT', settings, `${what}: deadline exceeded`, error);
      case grpc.status.RESOURCE_EXHAUSTED:
        if (/larg|size|exceed/i.test(details)) {
          return remoteError('E_TOO_LARGE', settings, `${what}: too large (${details})`, error);
        }
        return new TransientError(
          remoteError('E_UNAVAILABLE', settings, `${what}: busy (${details})`, error),
        );
      case grpc.status.UNIMPLEMENTED:
        return remoteError(
          'E_PROTOCOL',
          settings,
          `${what}: not implemented by the remote (${details})`,
          error,
        );
      case grpc.status.INVALID_ARGUMENT:
        return remoteError('E_INVALID_ARGUMENT', settings, `${what}: rejected (${details})`, error);
      case grpc.status.INTERNAL:
      case grpc.status.UNKNOWN:
      case grpc.status.ABORTED:
      case grpc.status.CANCELLED:
        // A reset stream or a server shutting down mid-call surfaces as one of these. We never cancel a call
        // without noting why (watchdog, abort signal: both handled above), so a CANCELLED came from the server.
        if (
          e.code === grpc.status.CANCELLED ||
          e.code === grpc.status.ABORTED ||
          /RST_STREAM|ECONNRESET|EPIPE|GOAWAY|reset|closed|abort/i.test(details)
        ) {
          return new TransientError(remoteError('E_UNAVAILABLE', settings, `${what}: ${details}`, error));
        }
        return remoteError('E_PROTOCOL', settings, `${what}: ${details}`, error);
      default:
        return remoteError('E_PROTOCOL', settings, `${what}: ${details}`, error);
    }
  };

  const checkOpen = () => {
    if (closed) throw remoteError('E_UNAVAILABLE', settings, 'the remote was closed');
  };

  const hasObjectBatch = (digests: readonly string[], signal: AbortSignal | undefined): Promise<boolean[]> =>
    withRetry(settings, signal, () => {
      checkOpen();
      return new Promise<boolean[]>((resolve, reject) => {
        let call: grpc.ClientUnaryCall | undefined;
        const watchdog = new Watchdog(settings.timeoutMs, () => call?.cancel());
        const onAbort = () => call?.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
        call = client.HasObject({ digest: digests }, metadata(), (err, res) => {
          watchdog.stop();
          signal?.removeEventListener('abort', onAbort);
          if (err) return reject(mapError(err, 'HasObject', watchdog, signal));
          if (res === undefined || res.present.length !== digests.length) {
            return reject(
              remoteError(
                'E_PROTOCOL',
                settings,
                `HasObject answered ${res?.present.length ?? 0} flags for ${digests.length} digests`,
              ),
            );
          }
          resolve([...res.present]);
        });
        call.on('metadata', noteFeatures);
      });
    });

  const hasTreeBatch = (
    digests: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<MissingResult> =>
    withRetry(settings, signal, async () => {
      checkOpen();
      const call = client.HasTree({ digest: digests }, metadata());
      call.on('metadata', noteFeatures);
      const watchdog = new Watchdog(settings.timeoutMs, () => call.cancel());
      const onAbort = () => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
      const trees = new Set<string>();
      const objects = new Set<string>();
      try {
        for await (const msg of call as AsyncIterable<HasTreeResponse>) {
          watchdog.kick();
          for (const d of msg.missingTrees) trees.add(normalizeOrProtocol(d));
          for (const d of msg.missingObjects) objects.add(normalizeOrProtocol(d));
        }
      } catch (error) {
        throw mapError(error, 'HasTree', watchdog, signal);
      } finally {
        watchdog.stop();
        signal?.removeEventListener('abort', onAbort);
      }
      return { trees: [...trees], objects: [...objects] };
    });

  const normalizeOrProtocol = (d: string): string => {
    try {
      return normalizeDigest(d);
    } catch (cause) {
      throw remoteError(
        'E_PROTOCOL',
        settings,
        `HasTree answered a malformed digest ${JSON.stringify(d)}`,
        cause,
      );
    }
  };

  const limit = pLimit(settings.concurrency);

  /**
   * One `WriteObject` call streaming `messages`; an ALREADY_EXISTS answer is a success. `inMemory`: the messages
   * are views of bytes already held, so they are queued without waiting for the stream to drain after each one
   * (which costs an event-loop turn per message); a stream from disk waits, to bound what is buffered.
   */
  const writeCall = async (
    what: string,
    md: grpc.Metadata,
    messages: AsyncIterable<WriteObjectRequest>,
    signal: AbortSignal | undefined,
    inMemory = false,
  ): Promise<void> => {
    let call: grpc.ClientWritableStream<WriteObjectRequest> | undefined;
    const watchdog = new Watchdog(settings.timeoutMs, () => call?.cancel());
    const onAbort = () => call?.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    const answered = new Promise<void>((resolve, reject) => {
      // A server may end the call with an OK status and no WriteObjectResponse (jolt-cache does: the message is
      // empty, so it sends none). grpc-js reports that as UNIMPLEMENTED "No message received"; the 'status' event,
      // emitted right after the callback, carries the status the server really sent, so decide there.
      let noMessage: grpc.ServiceError | undefined;
      call = client.WriteObject(md, (err) => {
        if (!err) return resolve();
        if (err.code === grpc.status.UNIMPLEMENTED) noMessage = err;
        else reject(err);
      });
      call.on('status', (status: grpc.StatusObject) => {
        if (noMessage === undefined) return;
        if (status.code === grpc.status.OK) resolve();
        else reject(noMessage);
      });
    });
    answered.catch(() => {});
    const stream = call!;
    try {
      for await (const message of messages) {
        if (!stream.write(message) && !inMemory) await Promise.race([once(stream, 'drain'), answered]);
        watchdog.kick();
      }
      stream.end();
      watchdog.kick();
      await answered;
    } catch (error) {
      if ((error as Partial<grpc.ServiceError>).code === grpc.status.ALREADY_EXISTS) return;
      stream.cancel();
      const mapped = mapError(error, what, watchdog, signal);
      if (RemoteErrorLike(mapped) && mapped.code === 'E_INVALID_ARGUMENT') {
        throw remoteError(
          'E_DIGEST_MISMATCH',
          settings,
          `${what}: the remote refused the bytes (${(error as Partial<grpc.ServiceError>).details ?? ''})`,
          error,
        );
      }
      throw mapped;
    } finally {
      watchdog.stop();
      signal?.removeEventListener('abort', onAbort);
    }
  };

  const remote: Remote = {
    url: url.href,
    protocol: 'grpc',
    get batchWrites() {
      return batchWrites;
    },
    get batchReads() {
      return batchReads;
    },

    async readMany(digests, onObject, options: RemoteCallOptions = {}) {
      const { signal } = options;
      const wanted = digests.map((d) => normalizeDigest(d));
      if (!batchReads || wanted.length < 2) {
        for (const d of wanted) await onObject(d, undefined);
        return;
      }
      // Objects handed to onObject so far: a retry asks only for the rest.
      let done = 0;
      const what = `ReadObject ${wanted[0]} (+${wanted.length - 1} in one stream)`;
      await withRetry(settings, signal, async () => {
        checkOpen();
        const rest = wanted.slice(done);
        const md = metadata();
        md.set(READ_BATCH_HEADER, '1');
        const call = client.ReadObject({ digest: rest[rest.length - 1]!, digests: rest }, md);
        const watchdog = new Watchdog(settings.timeoutMs, () => call.cancel());
        const onAbort = () => call.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
        let current: string | undefined;
        let chunks: Uint8Array[] = [];
        const hand = async (d: string, bytes: Uint8Array | undefined) => {
          // Never retried nor remapped: a refusal of onObject (a digest mismatch…) ends the read as it is.
          await onObject(d, bytes);
          done++;
        };
        try {
          for await (const msg of call as AsyncIterable<ReadObjectResponse>) {
            watchdog.kick();
            if (msg.digest !== undefined && msg.digest !== '') {
              if (current !== undefined) await hand(current, joined(chunks));
              current = undefined;
              chunks = [];
              const d = normalizeOrProtocol(msg.digest);
              if (d !== wanted[done]) {
                throw remoteError('E_PROTOCOL', settings, `${what}: answered ${d} out of order`);
              }
              if (msg.skipped) {
                await hand(d, undefined);
                continue;
              }
              current = d;
            } else if (current === undefined) {
              throw remoteError('E_PROTOCOL', settings, `${what}: bytes before any digest`);
            }
            // A view of the received message, not a copy: an object sent as one message is handed on as it came.
            if (msg.data.length > 0) chunks.push(msg.data);
            watchdog.kick();
          }
          if (current !== undefined) await hand(current, joined(chunks));
          if (done !== wanted.length) {
            throw remoteError(
              'E_PROTOCOL',
              settings,
              `${what}: answered ${done} of ${wanted.length} objects`,
            );
          }
        } catch (error) {
          call.cancel();
          throw mapError(error, what, watchdog, signal);
        } finally {
          watchdog.stop();
          signal?.removeEventListener('abort', onAbort);
        }
      });
    },

    async hasObjects(digests, options: RemoteCallOptions = {}) {
      const normal = digests.map((d) => normalizeDigest(d));
      const batches: string[][] = [];
      for (let i = 0; i < normal.length; i += BATCH) batches.push(normal.slice(i, i + BATCH));
      const answers = await Promise.all(batches.map((b) => limit(() => hasObjectBatch(b, options.signal))));
      return answers.flat();
    },

    async missing(treeDigests, options: RemoteCallOptions = {}) {
      const normal = [...new Set(treeDigests.map((d) => normalizeDigest(d)))];
      const batches: string[][] = [];
      for (let i = 0; i < normal.length; i += BATCH) batches.push(normal.slice(i, i + BATCH));
      const answers = await Promise.all(batches.map((b) => limit(() => hasTreeBatch(b, options.signal))));
      return {
        trees: [...new Set(answers.flatMap((a) => a.trees))],
        objects: [...new Set(answers.flatMap((a) => a.objects))],
      };
    },

    async read(digest, options: RemoteCallOptions = {}) {
      const d = normalizeDigest(digest);
      const { signal } = options;
      return withRetry(settings, signal, async () => {
        checkOpen();
        const call = client.ReadObject({ digest: d }, metadata());
        call.on('metadata', noteFeatures);
        const watchdog = new Watchdog(settings.timeoutMs, () => call.cancel());
        const onAbort = () => call.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
        const done = () => {
          watchdog.stop();
          signal?.removeEventListener('abort', onAbort);
        };
        const it = (call as AsyncIterable<ReadObjectResponse>)[Symbol.asyncIterator]();
        let first: IteratorResult<ReadObjectResponse>;
        try {
          // Waiting for the first message lets a refused or missing object fail (and retry) here, not mid-stream.
          first = await it.next();
          watchdog.kick();
        } catch (error) {
          done();
          throw mapError(error, `ReadObject ${d}`, watchdog, signal);
        }
        async function* chunks(): AsyncGenerator<Buffer> {
          try {
            let next = first;
            while (!next.done) {
              if (next.value.data.length > 0) yield Buffer.from(next.value.data);
              next = await it.next();
              watchdog.kick();
            }
          } catch (error) {
            const mapped = mapError(error, `ReadObject ${d}`, watchdog, signal);
            throw mapped instanceof TransientError ? mapped.final : mapped;
          } finally {
            done();
            call.cancel();
          }
        }
        return Readable.from(chunks(), { objectMode: false });
      });
    },

    async write(digest, data: WriteSource, options: RemoteWriteOptions = {}) {
      const d = normalizeDigest(digest);
      let used = false;
      await withRetry(settings, options.signal, async () => {
        checkOpen();
        const source = await openSource(data, used, settings, d);
        used = true;
        await writeCall(
          `WriteObject ${d}`,
          metadata(),
          objectMessages(d, source),
          options.signal,
          source instanceof Uint8Array,
        );
      });
    },

    async writeMany(objects: readonly BatchObject[], options: RemoteCallOptions = {}) {
      const { signal } = options;
      if (!batchWrites) {
        // A server that did not offer the extension gets one call per object.
        await Promise.all(objects.map((o) => limit(() => remote.write(o.digest, o.bytes, { signal }))));
        return;
      }
      // Consecutive repeats of a digest would read as one object: send each digest once.
      const unique = new Map<string, Uint8Array>();
      for (const o of objects) {
        const d = normalizeDigest(o.digest);
        if (!unique.has(d)) unique.set(d, o.bytes);
      }
      if (unique.size === 0) return;
      const first = unique.keys().next().value as string;
      const what = `WriteObject ${first}${unique.size > 1 ? ` (+${unique.size - 1} in one stream)` : ''}`;
      await withRetry(settings, signal, async () => {
        checkOpen();
        const md = metadata();
        md.set(WRITE_BATCH_HEADER, '1');
        async function* messages(): AsyncGenerator<WriteObjectRequest> {
          // fsw serve takes messages of up to 256 MiB: one message per object (<= 1 MiB when push batches it) saves
          // grpc-js's per-message work, which dominates for photo-sized objects sent in 64 KiB pieces.
          for (const [d, bytes] of unique) yield* objectMessages(d, bytes, BATCH_CHUNK_BYTES);
        }
        await writeCall(what, md, messages(), signal, true);
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      client.close();
    },

    async [Symbol.asyncDispose]() {
      await remote.close();
    },
  };
  return remote;
}

/** The messages of one object: its bytes in chunks, each naming its digest; an empty object is one empty message. */
async function* objectMessages(
  digest: string,
  source: Uint8Array | AsyncIterable<Uint8Array>,
  chunkBytes = CHUNK_BYTES,
): AsyncGenerator<WriteObjectRequest> {
  let sent = false;
  for await (const chunk of chunksOf(source, chunkBytes)) {
    sent = true;
    yield { digest, data: chunk };
  }
  if (!sent) yield { digest, data: new Uint8Array(0) };
}

/** The chunks of one object as one array: the only chunk itself, else a copy of them all. */
function joined(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  return Buffer.concat(chunks);
}

function RemoteErrorLike(e: unknown): e is { code: string } {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string';
}

/**
 * grpc-js's text for a failed connection, without its noise: "No connection established. Last error: Error: connect
 * ECONNREFUSED 127.0.0.1:1. Resolution note: " becomes "No connection established. Last error: connect ECONNREFUSED
 * 127.0.0.1:1".
 */
export function tidyDetails(details: string): string {
  return details
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/Last error: Error: /g, 'Last error: ')
    .trim();
}
