import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { RemoteError } from '@fsw/errors';
import { digestFromFstreeClientPath, OBJECT_BATCH_TYPE, WRITE_BATCH_HEADER } from '@fsw/remote';
import { classify, publicMessage, type ServiceContext } from './context.js';
import { type Digest, parseDigest } from './digest.js';
import { ObjectBatchDecoder } from './object-batch.js';
import type { ObjectWriter } from './objects.js';

/**
 * Largest body of a batch query (JSON, about 800,000 digests) or a batch upload (streamed, never held whole; our client
 * sends about 4 MiB).
 */
const MAX_BATCH_BODY = 64 * 1024 * 1024;
const LOOKUP_CONCURRENCY = 256;

/** What a request turned out to be, for the log and the counters. */
interface Outcome {
  status: number;
  target: string;
  received: number;
  sent: number;
}

/** The status a request is logged with when its client went away before it was answered (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499;

/** Whether the client closed the connection before sending its whole request (an upload cut short). */
function clientWentAway(req: IncomingMessage): boolean {
  return !req.complete && (req.destroyed || req.socket.destroyed);
}

/**
 * The HTTP front-end: the jolt-cache object API (`HEAD`/`GET`/`PUT /objects/<digest>`, `POST /objects?missing|present`),
 * the fstree C++ client's `<base>/<s[0:2]>/<s[2:8]>/<s[6:]>` paths, `/healthz` and `/metrics`.
 */
export function createHttpHandler(ctx: ServiceContext) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const outcome: Outcome = { status: 500, target: '', received: 0, sent: 0 };
    ctx
      .track(route(ctx, req, res, outcome))
      .catch((error: unknown) => {
        if (clientWentAway(req)) {
          // Nothing to answer and nothing the server did wrong: logged as nginx's 499, not reported to onError.
          outcome.status = CLIENT_CLOSED_REQUEST;
          res.destroy();
          return;
        }
        outcome.status = sendError(res, error);
        if (classify(error) === 'internal') ctx.onError(error);
      })
      .finally(() => {
        const method = req.method ?? 'GET';
        // A HEAD that finds nothing is the normal "not present" answer of the fstree client, not an error.
        const failed = outcome.status >= 400 && !(method === 'HEAD' && outcome.status === 404);
        ctx.metrics.request('http', method, failed);
        ctx.metrics.transfer('http', outcome.received, outcome.sent);
        ctx.onRequest?.({
          protocol: 'http',
          method,
          target: outcome.target || (req.url ?? '/'),
          status: outcome.status,
          durationMs: performance.now() - started,
          bytesReceived: outcome.received,
          bytesSent: outcome.sent,
        });
      });
  };
}

/**
 * Handles `Expect: 100-continue` before the body is sent: an object the server already has, or one larger than the
 * limit, is answered at once (and the connection closed), so the client never uploads the bytes.
 */
export function createContinueHandler(ctx: ServiceContext, handler: ReturnType<typeof createHttpHandler>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const early = async (): Promise<number | undefined> => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      // Refused callers never get to send a body (and learn nothing about the store).
      if (path !== '/healthz' && !ctx.authorized(req.headers.authorization)) return 401;
      if (req.method !== 'PUT') return undefined;
      const digest = objectDigest(path);
      if (!digest) return undefined;
      if (Number(req.headers['content-length'] ?? 0) > ctx.maxObjectBytes) return 413;
      return (await ctx.objects.has(digest)) ? 200 : undefined;
    };
    early().then(
      (status) => {
        if (status === undefined) {
          res.writeContinue();
          handler(req, res);
          return;
        }
        ctx.metrics.request('http', req.method ?? 'PUT', status >= 400);
        res.shouldKeepAlive = false;
        if (status === 401) res.setHeader('www-authenticate', 'Bearer');
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(
          status === 200 ? 'already stored\n' : status === 401 ? 'unauthorized\n' : 'object too large\n',
        );
      },
      () => {
        res.writeContinue();
        handler(req, res);
      },
    );
  };
}

async function route(ctx: ServiceContext, req: IncomingMessage, res: ServerResponse, outcome: Outcome) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  outcome.target = path;
  if (path === '/healthz' && (method === 'GET' || method === 'HEAD')) {
    // Health reveals nothing about the store, so load balancers may probe it without the token.
    outcome.status = send(res, 200, 'ok\n', method === 'HEAD');
    return;
  }
  if (!ctx.authorized(req.headers.authorization)) {
    res.setHeader('www-authenticate', 'Bearer');
    outcome.status = send(res, 401, 'unauthorized\n');
    req.resume();
    return;
  }
  if (path === '/metrics' && (method === 'GET' || method === 'HEAD')) {
    res.setHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    outcome.status = send(res, 200, ctx.metrics.render(figures(ctx)), method === 'HEAD');
    return;
  }
  if (/(?:^|\/)objects\/?$/.test(path) && method === 'POST') {
    if (url.searchParams.has('write')) await uploadBatch(ctx, req, res, outcome);
    else await batch(ctx, req, res, url, outcome);
    return;
  }
  const digestText = objectDigestText(path);
  if (digestText === undefined) {
    outcome.status = send(res, 404, 'not found\n');
    req.resume();
    return;
  }
  const digest = parseDigest(digestText);
  outcome.target = digest?.full ?? digestText;
  if (!digest) {
    outcome.status = send(res, 400, `not a digest: ${JSON.stringify(digestText.slice(0, 100))}\n`);
    req.resume();
    return;
  }
  switch (method) {
    case 'HEAD':
    case 'GET':
      await download(ctx, req, res, digest, outcome, method === 'HEAD');
      return;
    case 'PUT':
      await upload(ctx, req, res, digest, outcome);
      return;
    default:
      res.setHeader('allow', 'GET, HEAD, PUT');
      outcome.status = send(res, 405, 'method not allowed\n');
      req.resume();
  }
}

/** The digest text an object path names: `.../objects/<digest>` or the fstree client's `.../s0/s1/s2`. */
function objectDigestText(path: string): string | undefined {
  const segments = path.split('/');
  const last = segments.length - 1;
  let decoded: string[];
  try {
    decoded = segments.slice(Math.max(0, last - 2)).map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  if (segments[last - 1] === 'objects' && decoded[decoded.length - 1]) return decoded[decoded.length - 1];
  // The fstree C++ client, under any base path: `<s[0:2]>/<s[2:8]>/<s[6:]>` (the last segment repeats two characters
  // of the middle one: `bl/ake3:X/:<hex>`), as the real client sends it.
  if (last < 3) return undefined;
  return digestFromFstreeClientPath(`/${segments.slice(last - 2).join('/')}`);
}

function objectDigest(path: string): Digest | undefined {
  const text = objectDigestText(path);
  return text === undefined ? undefined : parseDigest(text);
}

async function download(
  ctx: ServiceContext,
  req: IncomingMessage,
  res: ServerResponse,
  digest: Digest,
  outcome: Outcome,
  headOnly: boolean,
): Promise<void> {
  req.resume();
  if (headOnly) {
    const found = await ctx.objects.locate(digest);
    if (!found) {
      outcome.status = send(res, 404, 'not found\n', true);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': found.size });
    res.end();
    outcome.status = 200;
    return;
  }
  const opened = await ctx.objects.openRead(digest);
  if (!opened) {
    outcome.status = send(res, 404, 'not found\n');
    return;
  }
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': opened.size,
    // Content-addressed: the bytes under this URL never change.
    'cache-control': 'public, max-age=31536000, immutable',
    etag: `"${digest.full}"`,
  });
  outcome.status = 200;
  if (opened.bytes) {
    outcome.sent = opened.bytes.byteLength;
    res.end(opened.bytes);
    return;
  }
  opened.stream.on('data', (chunk: string | Buffer) => {
    outcome.sent += chunk.length;
  });
  await pipeline(opened.stream, res);
}

async function upload(
  ctx: ServiceContext,
  req: IncomingMessage,
  res: ServerResponse,
  digest: Digest,
  outcome: Outcome,
): Promise<void> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > ctx.maxObjectBytes) {
    outcome.status = refuse(
      req,
      res,
      413,
      `object larger than the server's limit of ${ctx.maxObjectBytes} bytes\n`,
    );
    return;
  }
  if (await ctx.objects.has(digest)) {
    // Drain the body so the connection stays usable, without hashing or storing it.
    for await (const chunk of req) outcome.received += (chunk as Buffer).byteLength;
    outcome.status = send(res, 200, 'already stored\n');
    return;
  }
  const writer = await ctx.objects.createWriter(digest);
  try {
    for await (const chunk of req) {
      outcome.received += (chunk as Buffer).byteLength;
      await writer.write(chunk as Buffer);
    }
    if (!req.complete) throw new RemoteError('E_PROTOCOL', 'upload interrupted');
    const created = await writer.commit();
    ctx.metrics.uploads++;
    outcome.status = send(res, created ? 201 : 200, created ? 'stored\n' : 'already stored\n');
  } catch (error) {
    await writer.abort();
    if (RemoteError.is(error) && error.code === 'E_DIGEST_MISMATCH') ctx.metrics.rejectedUploads++;
    if (RemoteError.is(error) && error.code === 'E_TOO_LARGE') {
      outcome.status = refuse(req, res, 413, `${error.message}\n`);
      return;
    }
    throw error;
  }
}

async function batch(
  ctx: ServiceContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  outcome: Outcome,
): Promise<void> {
  const which = url.searchParams.has('missing')
    ? 'missing'
    : url.searchParams.has('present')
      ? 'present'
      : undefined;
  outcome.target = `${url.pathname}?${which ?? ''}`;
  if (!which) {
    outcome.status = send(res, 400, 'expected POST /objects?missing or POST /objects?present\n');
    req.resume();
    return;
  }
  const raw = await readBody(req, res, outcome, 'batch query');
  if (raw === undefined) return;
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    outcome.status = send(res, 400, 'body is not JSON (expected {"blobs": [...]})\n');
    return;
  }
  const blobs = Array.isArray(body) ? body : (body as { blobs?: unknown } | null)?.blobs;
  if (!Array.isArray(blobs) || !blobs.every((b) => typeof b === 'string')) {
    outcome.status = send(res, 400, 'expected a JSON body {"blobs": ["<digest>", ...]}\n');
    return;
  }
  const digests: Digest[] = [];
  for (const text of blobs as string[]) {
    const digest = parseDigest(text);
    if (!digest) {
      outcome.status = send(res, 400, `not a digest: ${JSON.stringify(text.slice(0, 100))}\n`);
      return;
    }
    digests.push(digest);
  }
  // A push asks this before uploading: keep what it was told is present until it has uploaded the rest.
  ctx.objects.announce(
    undefined,
    digests.map((d) => d.full),
  );
  const present: boolean[] = [];
  for (let i = 0; i < digests.length; i += LOOKUP_CONCURRENCY) {
    present.push(
      ...(await Promise.all(digests.slice(i, i + LOOKUP_CONCURRENCY).map((d) => ctx.objects.has(d)))),
    );
  }
  const answer = (blobs as string[]).filter((_, i) => present[i] === (which === 'present'));
  res.setHeader('content-type', 'application/json');
  // Our client's extension: it may now upload many objects per POST /objects?write (see uploadBatch).
  res.setHeader(WRITE_BATCH_HEADER, '1');
  outcome.status = send(res, 200, JSON.stringify({ blobs: answer, [which]: answer }));
}

/**
 * Reads a whole request body of at most {@link MAX_BATCH_BODY} bytes; undefined when it was larger (then answered
 * 413).
 */
async function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  outcome: Outcome,
  what: string,
): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BATCH_BODY) {
    outcome.status = refuse(req, res, 413, `${what} too large\n`);
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength;
    outcome.received = size;
    if (size > MAX_BATCH_BODY) {
      outcome.status = refuse(req, res, 413, `${what} too large\n`);
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * `POST /objects?write`, our client's batch upload (see `OBJECT_BATCH_PATH` in @fsw/remote): every object of the
 * body is verified and stored as a `PUT` would; objects already stored are skipped. The body is decoded as it
 * arrives, chunk by chunk, and each object stored as soon as its last byte is in (an object within one chunk is a view
 * of it, one spanning chunks is gathered by its writer), so the server never holds the whole body and reads the
 * request no faster than it stores. A mismatch answers 400 naming the object at once (those before it are stored,
 * nothing after it is), an object announced over `maxObjectBytes` 413 at once; the rest of the body is then read and
 * dropped, so that the client gets the answer rather than a reset connection. A body that ends mid-object is 400 (the
 * objects complete before it are stored); one over {@link MAX_BATCH_BODY} is 413 and the connection is closed.
 */
async function uploadBatch(
  ctx: ServiceContext,
  req: IncomingMessage,
  res: ServerResponse,
  outcome: Outcome,
): Promise<void> {
  outcome.target = '/objects?write';
  if (req.headers['content-type'] !== OBJECT_BATCH_TYPE) {
    outcome.status = refuse(req, res, 415, `expected a body of type ${OBJECT_BATCH_TYPE}\n`);
    return;
  }
  if (Number(req.headers['content-length'] ?? 0) > MAX_BATCH_BODY) {
    outcome.status = refuse(req, res, 413, 'object batch too large\n');
    return;
  }
  const decoder = new ObjectBatchDecoder();
  /** The object being received; undefined between objects and while skipping one the store already has. */
  let writer: ObjectWriter | undefined;
  let objects = 0;
  let stored = 0;
  let present = 0;
  /** How the request ended early: answered (the rest of the body is to be dropped), or refused (connection closed). */
  let stopped: 'answered' | 'refused' | undefined;
  const answer = (status: number, body: string): 'stop' => {
    outcome.status = send(res, status, body);
    stopped = 'answered';
    return 'stop';
  };

  const take = async (chunk: Buffer): Promise<'stop' | undefined> => {
    outcome.received += chunk.byteLength;
    if (outcome.received > MAX_BATCH_BODY) {
      outcome.status = refuse(req, res, 413, 'object batch too large\n');
      stopped = 'refused';
      return 'stop';
    }
    decoder.push(chunk);
    for (let part = decoder.read(); part !== undefined; part = decoder.read()) {
      if (part.type === 'object') {
        objects++;
        const digest = parseDigest(part.digest);
        if (!digest) return answer(400, `not a digest: ${JSON.stringify(part.digest.slice(0, 100))}\n`);
        outcome.target = `/objects?write ${digest.full}${objects > 1 ? ` (+${objects - 1})` : ''}`;
        if (ctx.objects.hasIndexed(digest) ?? (await ctx.objects.has(digest))) {
          present++;
          continue;
        }
        if (part.size > ctx.maxObjectBytes) {
          return answer(
            413,
            `object ${digest.full} is larger than the server's limit of ${ctx.maxObjectBytes} bytes\n`,
          );
        }
        writer = await ctx.objects.createWriter(digest);
        continue;
      }
      if (!writer) continue;
      await writer.write(part.bytes);
      if (!part.last) continue;
      const done = writer;
      writer = undefined;
      try {
        await done.commit();
      } catch (error) {
        if (!RemoteError.is(error) || error.code !== 'E_DIGEST_MISMATCH') throw error;
        ctx.metrics.rejectedUploads++;
        return answer(400, `${error.message}\n`);
      }
      ctx.metrics.uploads++;
      stored++;
    }
    return undefined;
  };

  try {
    await readChunks(req, take);
  } catch (error) {
    // Mid-body, with the rest unread: whatever answer `sendError` gives, the connection cannot be reused.
    closeAfterAnswer(req, res);
    throw error;
  } finally {
    // A body cut short (or refused) mid-object stores nothing of that object.
    await writer?.abort();
  }
  if (stopped === 'answered') dropRest(ctx, req, res, outcome.received);
  if (stopped) return;
  if (!req.complete) throw new RemoteError('E_PROTOCOL', 'upload interrupted');
  const truncated = decoder.truncation();
  if (truncated !== undefined) {
    outcome.status = send(res, 400, `${truncated}\n`);
    return;
  }
  res.setHeader('content-type', 'application/json');
  outcome.status = send(res, 200, JSON.stringify({ stored, present }));
}

/**
 * Hands the chunks of a request body to `take` one at a time, as the socket delivered them, pausing the request while
 * `take` works (backpressure; the stream's `read()`, which async iteration uses, would join chunks that piled up
 * meanwhile into one copy). Resolves at the end of the body, or once `take` answers `'stop'` (the request is then left
 * paused, with none of these listeners); rejects when the request fails (a client that went away) or `take` throws,
 * never while `take` is still at work.
 */
function readChunks(
  req: IncomingMessage,
  take: (chunk: Buffer) => Promise<'stop' | undefined>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let busy = false;
    /** What happened to the request while `take` was at work: settled once it is done. */
    let pending: { error?: unknown } | undefined;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onError = (error: unknown) => {
      if (busy) pending ??= { error };
      else settle(error);
    };
    const onEnd = () => {
      if (busy) pending ??= {};
      else settle();
    };
    const onClose = () => {
      if (!req.complete) onError(new RemoteError('E_PROTOCOL', 'upload interrupted'));
    };
    const onData = (chunk: Buffer) => {
      busy = true;
      req.pause();
      take(chunk).then(
        (next) => {
          busy = false;
          if (next === 'stop') settle();
          else if (pending) settle(pending.error);
          else req.resume();
        },
        (error: unknown) => {
          busy = false;
          settle(error);
        },
      );
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * After an answer given mid-body: reads what is left of the body and drops it, so that the connection serves the
 * client's next request, unless the body grows past {@link MAX_BATCH_BODY} in all (then the connection is closed).
 */
function dropRest(ctx: ServiceContext, req: IncomingMessage, res: ServerResponse, received: number): void {
  let total = received;
  const onData = (chunk: Buffer) => {
    total += chunk.byteLength;
    // The request was logged when answered; its bytes still count in the metrics.
    ctx.metrics.transfer('http', chunk.byteLength, 0);
    if (total <= MAX_BATCH_BODY) return;
    req.off('data', onData);
    closeAfterAnswer(req, res);
  };
  req.on('data', onData);
  // A client that goes away now is no failure: the answer is out.
  req.on('error', () => undefined);
  req.resume();
}

/** The figures of the store for the metrics page. */
export function figures(ctx: ServiceContext) {
  return {
    objects: ctx.objects.count,
    bytes: ctx.objects.bytes,
    maxBytes: ctx.maxBytes,
    evictions: ctx.objects.evictions,
    evictedBytes: ctx.objects.evictedBytes,
    announcements: ctx.objects.announcements,
  };
}

function send(res: ServerResponse, status: number, body: string, headOnly = false): number {
  const bytes = Buffer.from(body);
  if (!res.hasHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.writeHead(status, { 'content-length': bytes.byteLength });
  res.end(headOnly ? undefined : bytes);
  return status;
}

/** Answers before the body was read, and closes the connection rather than reading an unwanted body. */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, body: string): number {
  closeAfterAnswer(req, res);
  send(res, status, body);
  return status;
}

/** Closes the connection once the answer (given or still to come) is out, leaving the rest of the body unread. */
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (res.writableFinished) {
    req.destroy();
    return;
  }
  if (!res.headersSent) {
    res.shouldKeepAlive = false;
    res.setHeader('connection', 'close');
  }
  res.on('finish', () => req.destroy());
}

function sendError(res: ServerResponse, error: unknown): number {
  const failure = classify(error);
  const status =
    failure === 'invalid' ? 400 : failure === 'too-large' ? 413 : failure === 'no-space' ? 507 : 500;
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  res.removeHeader('content-type');
  return send(res, status, `${publicMessage(error)}\n`);
}
