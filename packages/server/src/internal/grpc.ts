import { RemoteError } from '@fsw/errors';
import type {
  HasObjectRequest,
  HasObjectResponse,
  HasTreeRequest,
  HasTreeResponse,
  ReadObjectRequest,
  ReadObjectResponse,
  WriteObjectRequest,
  WriteObjectResponse,
} from '@fsw/remote';
import { READ_BATCH_HEADER, WRITE_BATCH_HEADER } from '@fsw/remote';
import type {
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  sendUnaryData,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { Metadata, status as Status } from '@grpc/grpc-js';
import { classify, publicMessage, type ServiceContext } from './context.js';
import { type Digest, parseDigest } from './digest.js';
import { findMissing } from './has-tree.js';
import type { ObjectWriter } from './objects.js';

const LOOKUP_CONCURRENCY = 256;
const CHUNK_BYTES = 64 * 1024;

/** A gRPC failure: a status code and the details the client sees. */
class CallError extends Error {
  readonly code: Status;
  constructor(code: Status, details: string) {
    super(details);
    this.code = code;
  }
}

interface CallLog {
  target: string;
  received: number;
  sent: number;
}

/** The `fstree.CacheService` implementation over the server's objects. */
export function createGrpcHandlers(ctx: ServiceContext): UntypedServiceImplementation {
  /** Runs one call: checks the token, counts and logs it, and turns failures into statuses. */
  const serve = (
    method: string,
    metadata: Metadata,
    work: (log: CallLog) => Promise<void>,
    fail: (error: CallError) => void,
  ): void => {
    const started = performance.now();
    const log: CallLog = { target: '', received: 0, sent: 0 };
    let code: Status = Status.OK;
    const run = async () => {
      const header = metadata.get('authorization')[0];
      if (!ctx.authorized(typeof header === 'string' ? header : header?.toString('utf8'))) {
        throw new CallError(Status.UNAUTHENTICATED, 'unauthenticated');
      }
      await work(log);
    };
    ctx
      .track(run())
      .catch((error: unknown) => {
        const failure = toCallError(error);
        if (!(error instanceof CallError) && classify(error) === 'internal') ctx.onError(error);
        code = failure.code;
        fail(failure);
      })
      .finally(() => {
        // ALREADY_EXISTS is how the protocol says "nothing to do"; a missing object is a normal answer too.
        ctx.metrics.request('grpc', method, code !== Status.OK && code !== Status.ALREADY_EXISTS);
        ctx.metrics.transfer('grpc', log.received, log.sent);
        ctx.onRequest?.({
          protocol: 'grpc',
          method,
          target: log.target,
          status: Status[code] ?? String(code),
          durationMs: performance.now() - started,
          bytesReceived: log.received,
          bytesSent: log.sent,
        });
      });
  };

  const HasObject = (
    call: ServerUnaryCall<HasObjectRequest, HasObjectResponse>,
    callback: sendUnaryData<HasObjectResponse>,
  ): void => {
    serve(
      'HasObject',
      call.metadata,
      async (log) => {
        const digests = call.request.digest.map(requireDigest);
        log.target = describe(digests);
        call.sendMetadata(features());
        const present: boolean[] = [];
        for (let i = 0; i < digests.length; i += LOOKUP_CONCURRENCY) {
          const slice = digests.slice(i, i + LOOKUP_CONCURRENCY);
          present.push(...(await Promise.all(slice.map((d) => ctx.objects.has(d)))));
        }
        callback(null, { present });
      },
      (error) => callback({ code: error.code, details: error.message }),
    );
  };

  const HasTree = (call: ServerWritableStream<HasTreeRequest, HasTreeResponse>): void => {
    const cancelled = cancellation(call);
    serve(
      'HasTree',
      call.metadata,
      async (log) => {
        const roots = call.request.digest.map(requireDigest);
        log.target = describe(roots);
        call.sendMetadata(features());
        // One announcement per set of roots: a push asks again about the trees it uploaded, and a walk that finds
        // nothing missing below them ends it.
        const key = `tree:${roots
          .map((r) => r.full)
          .sort()
          .join(',')}`;
        const missing = await findMissing(ctx.objects, roots, {
          signal: cancelled,
          onSeen: (digests, trees) => ctx.objects.announce(key, digests, trees),
          emit: (batch) => send(call, batch, cancelled),
        });
        if (missing === 0) ctx.objects.release(key);
        call.end();
      },
      (error) => call.emit('error', { code: error.code, details: error.message }),
    );
  };

  const ReadObject = (call: ServerWritableStream<ReadObjectRequest, ReadObjectResponse>): void => {
    const cancelled = cancellation(call);
    // Our client's extension (see READ_BATCH_HEADER): several small objects, one after the other, in one stream.
    const batch = call.metadata.get(READ_BATCH_HEADER)[0] === '1';
    serve(
      'ReadObject',
      call.metadata,
      async (log) => {
        call.sendMetadata(features());
        if (batch) {
          const digests = (call.request.digests ?? [call.request.digest]).map(requireDigest);
          log.target = describe(digests);
          for (const digest of digests) {
            const bytes = ctx.objects.readSmallSync(digest);
            if (bytes === undefined) {
              await send(call, { data: EMPTY, digest: digest.full, skipped: true }, cancelled);
              continue;
            }
            log.sent += bytes.byteLength;
            // Our client takes messages of any size: one per object (<= 1 MiB) rather than 64 KiB pieces.
            await sendBytes(call, bytes, cancelled, digest.full, bytes.byteLength);
          }
          call.end();
          return;
        }
        const digest = requireDigest(call.request.digest);
        log.target = digest.full;
        const opened = await ctx.objects.openRead(digest, CHUNK_BYTES);
        if (!opened) throw new CallError(Status.NOT_FOUND, `object not found: ${digest.full}`);
        if (opened.bytes) {
          log.sent += opened.bytes.byteLength;
          await sendBytes(call, opened.bytes, cancelled);
        } else {
          const stream = opened.stream;
          try {
            for await (const chunk of stream) {
              log.sent += (chunk as Buffer).byteLength;
              await send(call, { data: chunk as Buffer }, cancelled);
            }
          } finally {
            stream.destroy();
          }
        }
        call.end();
      },
      (error) => call.emit('error', { code: error.code, details: error.message }),
    );
  };

  const WriteObject = (
    call: ServerReadableStream<WriteObjectRequest, WriteObjectResponse>,
    callback: sendUnaryData<WriteObjectResponse>,
  ): void => {
    // Our client's extension (see WRITE_BATCH_HEADER): several objects, one after the other, in one stream.
    const batch = call.metadata.get(WRITE_BATCH_HEADER)[0] === '1';
    serve(
      'WriteObject',
      call.metadata,
      async (log) => {
        let digest: Digest | undefined;
        let named = '';
        let writer: ObjectWriter | undefined;
        let objects = 0;
        /** Verifies and stores the object received so far (nothing when it was already stored). */
        const finish = async () => {
          const current = writer;
          writer = undefined;
          if (current === undefined) return;
          try {
            await current.commit();
          } catch (error) {
            if (RemoteError.is(error) && error.code === 'E_DIGEST_MISMATCH') ctx.metrics.rejectedUploads++;
            throw error;
          }
          ctx.metrics.uploads++;
        };
        try {
          for await (const message of call as AsyncIterable<WriteObjectRequest>) {
            const data = message.data;
            log.received += data.byteLength;
            if (!digest || (message.digest !== '' && message.digest !== named)) {
              if (message.digest === '') {
                throw new CallError(
                  Status.INVALID_ARGUMENT,
                  'the first WriteObject message carries no digest',
                );
              }
              const next = requireDigest(message.digest);
              named = message.digest;
              if (digest && next.full !== digest.full && !batch) {
                throw new CallError(
                  Status.INVALID_ARGUMENT,
                  `one WriteObject stream names two digests: ${digest.full} and ${message.digest.slice(0, 100)}`,
                );
              }
              if (!digest || next.full !== digest.full) {
                await finish();
                digest = next;
                objects++;
                log.target = objects > 1 ? `${digest.full} (object ${objects})` : digest.full;
                const stored = ctx.objects.hasIndexed(digest) ?? (await ctx.objects.has(digest));
                if (stored && !batch) {
                  throw new CallError(Status.ALREADY_EXISTS, `already stored: ${digest.full}`);
                }
                // In a batch, an object already stored is skipped (its messages are read and dropped).
                if (!stored) writer = await ctx.objects.createWriter(digest);
              }
            }
            await writer?.write(data);
          }
          if (!digest) throw new CallError(Status.INVALID_ARGUMENT, 'empty WriteObject stream');
          if (call.cancelled) throw new CallError(Status.CANCELLED, 'upload cancelled');
          await finish();
          callback(null, {});
        } finally {
          await writer?.abort();
        }
      },
      (error) => callback({ code: error.code, details: error.message }),
    );
  };

  return { HasObject, HasTree, ReadObject, WriteObject };
}

/** The initial metadata of `HasObject`/`HasTree`/`ReadObject` answers: the extensions this server accepts. */
function features(): Metadata {
  const md = new Metadata();
  md.set(WRITE_BATCH_HEADER, '1');
  md.set(READ_BATCH_HEADER, '1');
  return md;
}

const EMPTY = new Uint8Array(0);

/**
 * Sends an object held in memory in chunks of 64 KiB, or `chunkBytes` (an empty object is one message with empty data, as fstree's
 * client expects); `digest`, when given, goes with the first chunk (the batch extension).
 */
async function sendBytes(
  call: ServerWritableStream<unknown, ReadObjectResponse>,
  bytes: Uint8Array,
  cancelled: AbortSignal,
  digest?: string,
  chunkBytes = CHUNK_BYTES,
): Promise<void> {
  const step = Math.max(1, chunkBytes);
  let offset = 0;
  do {
    const data = bytes.subarray(offset, offset + step);
    await send(call, offset === 0 && digest !== undefined ? { data, digest } : { data }, cancelled);
    offset += step;
  } while (offset < bytes.byteLength);
}

function requireDigest(text: string): Digest {
  const digest = parseDigest(text);
  if (!digest)
    throw new CallError(Status.INVALID_ARGUMENT, `not a digest: ${JSON.stringify(text.slice(0, 100))}`);
  return digest;
}

function describe(digests: readonly Digest[]): string {
  const first = digests[0]?.full ?? '';
  return digests.length > 1 ? `${first} (+${digests.length - 1})` : first;
}

function toCallError(error: unknown): CallError {
  if (error instanceof CallError) return error;
  const failure = classify(error);
  const code =
    failure === 'invalid'
      ? Status.INVALID_ARGUMENT
      : failure === 'too-large' || failure === 'no-space'
        ? Status.RESOURCE_EXHAUSTED
        : (error as { name?: string } | undefined)?.name === 'AbortError' ||
            (error as NodeJS.ErrnoException | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE'
          ? Status.CANCELLED
          : Status.INTERNAL;
  return new CallError(code, publicMessage(error));
}

// One shared reason: building an error (and its stack) for every call that ends would cost more than the call.
const CANCELLED = new CallError(Status.CANCELLED, 'cancelled by the client');

/** An AbortSignal that fires when the client cancels the call (or its deadline passes). */
function cancellation(call: { on(event: 'cancelled', listener: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort(CANCELLED));
  return controller.signal;
}

/** Writes one message, waiting for the client to take it when the stream's buffer is full. */
function send<T>(call: ServerWritableStream<unknown, T>, message: T, cancelled: AbortSignal): Promise<void> {
  cancelled.throwIfAborted();
  if (call.write(message)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      call.off('drain', onDrain);
      reject(cancelled.reason);
    };
    const onDrain = () => {
      cancelled.removeEventListener('abort', onAbort);
      resolve();
    };
    call.once('drain', onDrain);
    cancelled.addEventListener('abort', onAbort, { once: true });
  });
}
