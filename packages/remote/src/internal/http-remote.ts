import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { RemoteError } from '@fsw/errors';
import pLimit from 'p-limit';
import {
  batchPath,
  decodeBatchAnswer,
  encodeBatchQuery,
  encodeObjectBatch,
  fstreeClientPath,
  normalizeDigest,
  OBJECT_BATCH_PATH,
  OBJECT_BATCH_TYPE,
  objectPath,
  WRITE_BATCH_HEADER,
} from '../protocol.js';
import type { BatchObject, Remote, RemoteCallOptions, RemoteWriteOptions, WriteSource } from '../types.js';
import { missingByWalking } from './missing-walk.js';
import { type CallSettings, isTransientErrno, remoteError, TransientError, withRetry } from './retry.js';
import { chunksOf, openSource } from './source.js';

/** Digests per batch POST: ~700 KB of JSON. */
const BATCH = 10_000;

/**
 * Answers to the batch query after which the client stops asking it and sends a `HEAD` per object instead. A 500 is
 * retried first like any transient failure; only one that outlasts the retries counts (see `batchQuery`).
 */
const BATCH_UNSUPPORTED = new Set([400, 404, 405, 415, 422, 501]);

interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: http.IncomingMessage;
}

interface RequestSpec {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST';
  readonly path: string;
  readonly headers?: Record<string, string | number>;
  readonly body?: Uint8Array | AsyncIterable<Uint8Array>;
  readonly signal?: AbortSignal | undefined;
  readonly what: string;
}

function retryAfterMs(headers: http.IncomingHttpHeaders): number | undefined {
  const value = headers['retry-after'];
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

async function drain(body: http.IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

/** Opens an HTTP remote (`http://`, `https://`): jolt-cache's object API, or the fstree client's path layout. */
export function openHttpRemote(url: URL, settings: CallSettings, layout: 'jolt' | 'fstree'): Remote {
  const secure = url.protocol === 'https:';
  const mod = secure ? https : http;
  const agent = new mod.Agent({ keepAlive: true, maxSockets: settings.concurrency });
  const base = url.pathname.replace(/\/+$/, '');
  const pathOf = (digest: string) =>
    layout === 'fstree' ? fstreeClientPath(digest, base) : `${base}${objectPath(digest)}`;
  // Cleared once the server answers the batch query with a status in BATCH_UNSUPPORTED: we then HEAD each object.
  let batchSupported = layout === 'jolt';
  /** The server announced the batch upload (`POST /objects?write`) in a batch-query answer. */
  let batchWrites = false;
  let closed = false;
  const limit = pLimit(settings.concurrency);

  const send = (spec: RequestSpec): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      if (closed)
        return reject(remoteError('E_UNAVAILABLE', settings, `${spec.what}: the remote was closed`));
      const headers: Record<string, string | number> = { ...spec.headers };
      if (settings.token !== undefined) headers.authorization = `Bearer ${settings.token}`;
      let connected = false;
      let timedOut = false;
      const req = mod.request(
        {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port === '' ? undefined : Number(url.port),
          path: spec.path,
          method: spec.method,
          headers,
          agent,
          signal: spec.signal,
        },
        (res) => {
          // From here on, the socket timeout guards the body as it streams in.
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
        },
      );
      req.on('socket', (socket) => {
        if (!socket.connecting) connected = true;
        else socket.once('connect', () => (connected = true));
      });
      req.setTimeout(settings.timeoutMs, () => {
        timedOut = true;
        req.destroy(new Error('timeout'));
      });
      req.on('error', (error) => {
        if (spec.signal?.aborted) return reject(spec.signal.reason);
        if (timedOut) {
          return reject(
            connected
              ? remoteError(
                  'E_TIMEOUT',
                  settings,
                  `${spec.what}: no answer within ${settings.timeoutMs} ms`,
                  error,
                )
              : remoteError(
                  'E_UNAVAILABLE',
                  settings,
                  `${spec.what}: could not connect within ${settings.timeoutMs} ms`,
                  error,
                ),
          );
        }
        if (RemoteError.is(error)) return reject(error);
        if (isTransientErrno(error) || !connected) {
          return reject(
            new TransientError(
              remoteError('E_UNAVAILABLE', settings, `${spec.what}: ${(error as Error).message}`, error),
            ),
          );
        }
        reject(remoteError('E_IO', settings, `${spec.what}: ${(error as Error).message}`, error));
      });
      const body = spec.body;
      if (body === undefined) req.end();
      else if (body instanceof Uint8Array) req.end(body);
      else {
        (async () => {
          for await (const chunk of chunksOf(body, 1024 * 1024)) {
            if (!req.write(chunk)) await new Promise<void>((r) => req.once('drain', r));
          }
          req.end();
        })().catch((error) => req.destroy(error as Error));
      }
    });

  /** Maps a non-success status to an error (transient for 5xx/429); reads and discards the body. */
  const statusError = async (res: Response, what: string): Promise<Error> => {
    const text = res.status === 0 ? '' : (await drain(res.body).catch(() => '')).slice(0, 200).trim();
    const detail = `HTTP ${res.status}${text === '' ? '' : `: ${text}`}`;
    if (res.status === 401 || res.status === 403) {
      return remoteError('E_UNAUTHENTICATED', settings, `${what}: refused (${detail})`);
    }
    if (res.status === 404)
      return remoteError('E_MISSING_OBJECT', settings, `${what}: not found (${detail})`);
    if (res.status === 413) return remoteError('E_TOO_LARGE', settings, `${what}: too large (${detail})`);
    if (res.status === 429 || res.status >= 500) {
      return new TransientError(
        remoteError('E_UNAVAILABLE', settings, `${what}: ${detail}`),
        retryAfterMs(res.headers),
      );
    }
    return remoteError('E_PROTOCOL', settings, `${what}: unexpected ${detail}`);
  };

  /**
   * Settles the answer to an upload: a success (also "already there", 409), a refusal of the bytes (400/422:
   * E_DIGEST_MISMATCH), or the status's error.
   */
  const uploaded = async (res: Response, what: string): Promise<void> => {
    if ((res.status >= 200 && res.status < 300) || res.status === 409) {
      res.body.resume();
      return;
    }
    if (res.status === 400 || res.status === 422) {
      const text = (await drain(res.body).catch(() => '')).slice(0, 200).trim();
      throw remoteError(
        'E_DIGEST_MISMATCH',
        settings,
        `${what}: the remote refused the bytes (HTTP ${res.status}${text ? `: ${text}` : ''})`,
      );
    }
    throw await statusError(res, what);
  };

  const headOne = (digest: string, signal: AbortSignal | undefined): Promise<boolean> =>
    withRetry(settings, signal, async () => {
      const res = await send({ method: 'HEAD', path: pathOf(digest), signal, what: `HEAD ${digest}` });
      res.body.resume();
      if (res.status >= 200 && res.status < 300) return true;
      if (res.status === 404) return false;
      throw await statusError(res, `HEAD ${digest}`);
    });

  /** The batch query; `undefined` when the server does not offer it. */
  const batchQuery = async (
    digests: readonly string[],
    which: 'missing' | 'present',
    signal: AbortSignal | undefined,
  ): Promise<Set<string> | undefined> => {
    let lastStatus = 0;
    try {
      return await withRetry(settings, signal, async () => {
        lastStatus = 0;
        const body = Buffer.from(encodeBatchQuery(digests));
        const res = await send({
          method: 'POST',
          path: `${base}${batchPath(which)}`,
          headers: { 'content-type': 'application/json', 'content-length': body.length },
          body,
          signal,
          what: `POST ${batchPath(which)}`,
        });
        lastStatus = res.status;
        // Not offered (404/405/501), or not understood (400/415/422): HEAD per object then.
        if (BATCH_UNSUPPORTED.has(res.status)) {
          res.body.resume();
          return undefined;
        }
        if (res.status < 200 || res.status >= 300) throw await statusError(res, `POST ${batchPath(which)}`);
        if (res.headers[WRITE_BATCH_HEADER] === '1') batchWrites = true;
        const answer = decodeBatchAnswer(await drain(res.body), which);
        return new Set(answer.map((d) => normalizeDigest(d)));
      });
    } catch (error) {
      // Still 500 after the retries: jolt-cache builds that cannot decode digest strings answer every query so
      // (`{"message":"Bad request: ... Unmarshal type error ..."}`). HEAD per object then; a dead server still fails.
      if (lastStatus === 500 && !signal?.aborted) return undefined;
      throw error;
    }
  };

  const hasObjects = async (
    digests: readonly string[],
    options: RemoteCallOptions = {},
  ): Promise<boolean[]> => {
    const normal = digests.map((d) => normalizeDigest(d));
    if (batchSupported) {
      const batches: string[][] = [];
      for (let i = 0; i < normal.length; i += BATCH) batches.push(normal.slice(i, i + BATCH));
      const answers = await Promise.all(
        batches.map((b) => limit(() => batchQuery(b, 'missing', options.signal))),
      );
      if (answers.every((a) => a !== undefined)) {
        const missingSet = new Set(answers.flatMap((a) => [...a!]));
        return normal.map((d) => !missingSet.has(d));
      }
      batchSupported = false;
    }
    return Promise.all(normal.map((d) => limit(() => headOne(d, options.signal))));
  };

  const remote: Remote = {
    url: url.href,
    protocol: 'http',
    hasObjects,

    missing(treeDigests, options: RemoteCallOptions = {}) {
      return missingByWalking(treeDigests, {
        hasObjects: (d) => hasObjects(d, options),
        readTree: (d) => readAll(d, options.signal),
        concurrency: settings.concurrency,
      });
    },

    async read(digest, options: RemoteCallOptions = {}) {
      const d = normalizeDigest(digest);
      return withRetry(settings, options.signal, async () => {
        const res = await send({ method: 'GET', path: pathOf(d), signal: options.signal, what: `GET ${d}` });
        if (res.status < 200 || res.status >= 300) throw await statusError(res, `GET ${d}`);
        const body = res.body;
        const out = new Readable({ read: () => body.resume() });
        body.on('data', (chunk: Buffer) => {
          if (!out.push(chunk)) body.pause();
        });
        body.on('end', () => {
          if (!body.complete)
            out.destroy(remoteError('E_UNAVAILABLE', settings, `GET ${d}: connection closed midway`));
          else out.push(null);
        });
        body.on('error', (error) =>
          out.destroy(remoteError('E_UNAVAILABLE', settings, `GET ${d}: ${error.message}`, error)),
        );
        body.on('aborted', () =>
          out.destroy(remoteError('E_UNAVAILABLE', settings, `GET ${d}: connection closed midway`)),
        );
        return out;
      });
    },

    async write(digest, data: WriteSource, options: RemoteWriteOptions = {}) {
      const d = normalizeDigest(digest);
      let used = false;
      await withRetry(settings, options.signal, async () => {
        const source = await openSource(data, used, settings, d);
        used = true;
        const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
        if (source instanceof Uint8Array) headers['content-length'] = source.length;
        else if (options.size !== undefined) headers['content-length'] = options.size;
        const res = await send({
          method: 'PUT',
          path: pathOf(d),
          headers,
          body: source,
          signal: options.signal,
          what: `PUT ${d}`,
        });
        await uploaded(res, `PUT ${d}`);
      });
    },

    get batchWrites() {
      return batchWrites;
    },

    async writeMany(objects: readonly BatchObject[], options: RemoteCallOptions = {}) {
      const { signal } = options;
      if (!batchWrites) {
        await Promise.all(objects.map((o) => limit(() => remote.write(o.digest, o.bytes, { signal }))));
        return;
      }
      if (objects.length === 0) return;
      const body = encodeObjectBatch(
        objects.map((o) => ({ digest: normalizeDigest(o.digest), bytes: o.bytes })),
      );
      const what = `POST ${OBJECT_BATCH_PATH} (${objects.length} objects)`;
      await withRetry(settings, signal, async () => {
        const res = await send({
          method: 'POST',
          path: `${base}${OBJECT_BATCH_PATH}`,
          headers: { 'content-type': OBJECT_BATCH_TYPE, 'content-length': body.length },
          body,
          signal,
          what,
        });
        await uploaded(res, what);
      });
    },

    async close() {
      closed = true;
      agent.destroy();
    },

    async [Symbol.asyncDispose]() {
      await remote.close();
    },
  };

  const readAll = async (digest: string, signal: AbortSignal | undefined): Promise<Uint8Array> => {
    const stream = await remote.read(digest, { signal });
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  };

  return remote;
}
